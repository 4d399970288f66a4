"""The speed record (``speed/strategy_step_time.py --record``) and its tables in docs/benchmarks.md
(``lightning_nas.results.speed``): a run is merged per space, the tables are computed from the record
alone, and a missing record is one clear error."""
from __future__ import annotations

import argparse
import importlib.util
import json

import pytest

from lightning_nas.report.common import ReportError
from lightning_nas.results import render
from lightning_nas.results.render import ROOT
from lightning_nas.results.speed import load, operators


def script():
    spec = importlib.util.spec_from_file_location("strategy_step_time", ROOT / "speed" / "strategy_step_time.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(space: str, spos: int, darts: int | None, batch: int = 4) -> tuple[argparse.Namespace, list[dict]]:
    args = argparse.Namespace(space=space, space_options="{}", network="{}", hidden=16, bptt=35, vocab=100, C=16, N=1,
                              image=16, batch=batch, steps=1, threads=1, one=None, record=None)
    results = [{"label": "SPOS", "kernels": spos, "products": 3, "median_s": 0.1, "memory_bytes": 0, "memory": "rss"}]
    results.append({"label": "PC-DARTS (K=4)", "unsupported": "no partial channels"} if darts is None else
                   {"label": "PC-DARTS (K=4)", "kernels": darts, "products": 50, "median_s": 0.25, "memory_bytes": 0,
                    "memory": "rss"})
    return args, results


def test_record_merges_spaces_and_tables_come_from_it(tmp_path):
    module = script()
    path = tmp_path / "speed" / "operators.json"
    load_avg = ([1.5, 1.0, 1.0], [2.5, 1.2, 1.0])
    module.write_record(path, *run("darts_rnn", 100, None), load_avg, "2026-12-07T15:00:00Z")
    module.write_record(path, *run("nb201", 300, 1000, batch=8), load_avg, "2026-12-07T15:00:00Z")
    module.write_record(path, *run("nb201", 319, 1333), load_avg, "2026-12-07T15:00:00Z")  # replaces nb201
    record = load(path.parent)
    assert list(record["spaces"]) == ["darts_rnn", "nb201"]
    assert record["spaces"]["nb201"]["environment"]["torch"]
    table = operators(record).splitlines()
    assert table[0].startswith("| strategy | NB201: operators (matrix products) | / SPOS | DARTS RNN:")
    assert table[3] == "| PC-DARTS (K=4) | 1,333 (50) | 4.18 | unsupported |  |"
    assert "batch 4 x 3 x 16^2, C=16, N=1" in operators(record)
    assert record["spaces"]["nb201"]["load_average"] == {"before": [1.5, 1.0, 1.0], "after": [2.5, 1.2, 1.0]}
    assert record["spaces"]["nb201"]["strategies"][1]["median_s"] == 0.25


def test_render_fills_the_speed_blocks_and_a_missing_record_is_named(tmp_path):
    module = script()
    results = tmp_path / "results"
    module.write_record(results / "speed" / "operators.json", *run("nb201", 319, 1333), ([1.0] * 3, [1.0] * 3), "t")
    (tmp_path / "docs").mkdir()
    doc = tmp_path / "docs" / "benchmarks.md"
    doc.write_text("<!-- generated:speed/operators -->\n<!-- /generated:speed/operators -->\n")
    render(tmp_path, results, figures=False)
    assert "| PC-DARTS (K=4) | 1,333 (50) | 4.18 |" in doc.read_text()
    assert render(tmp_path, results, check=True) == []
    with pytest.raises(ReportError, match="operators.json"):
        render(tmp_path, tmp_path / "elsewhere", check=True)
    doc.write_text("<!-- generated:speed/nonsense -->\n<!-- /generated:speed/nonsense -->\n")
    with pytest.raises(ReportError, match="no such speed table"):
        render(tmp_path, results, check=True)


def test_the_shipped_record_counts_every_strategy_on_three_spaces():
    record = json.loads((ROOT / "results" / "speed" / "operators.json").read_text())
    assert {"nb201", "darts_cnn", "darts_rnn"} <= set(record["spaces"])
    for entry in record["spaces"].values():
        assert entry["environment"]["commit"] and entry["environment"]["dirty"] is False
        assert all(r.get("operators", 0) > 0 or "unsupported" in r for r in entry["strategies"])


def authors_script():
    spec = importlib.util.spec_from_file_location("darts_rnn_authors", ROOT / "speed" / "darts_rnn_authors.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def authors_run(hidden: int, ours: int, theirs: int) -> tuple:
    options = dict(hidden=hidden, batch=4, bptt=35, vocab=100, rounds=3, threads=1, before=None)
    sides = [{"side": "ours", "operators": ours, "matrix_products": 300, "operators_to_authors": ours / theirs,
              "median_time_to_authors": 0.45, "times_s": [0.1, 0.2, 0.3]},
             {"side": "authors", "operators": theirs, "matrix_products": 200, "operators_to_authors": 1.0,
              "median_time_to_authors": 1.0, "times_s": [0.3, 0.4, 0.5]}]
    agreement = {"eval": {"ours": {"max_abs_difference": 800.0, "max_abs_value": 4e8, "relative": 2e-6}},
                 "train (no dropout)": {"ours": {"max_abs_difference": 1.5e-6, "max_abs_value": 5.0, "relative": 3e-7}}}
    return options, {"commit": "f276dd346a09ae3160f8e3aca5c7b193fda1da37", "dirty": False}, sides, agreement


def test_authors_record_merges_shapes_and_renders_its_block(tmp_path):
    """``speed/darts_rnn_authors.py --record``: one entry per shape (a rerun replaces it), and the
    block ``speed/darts_rnn_authors`` is its table: per shape ours against the authors', and a line
    naming what the times and counts depend on."""
    module = authors_script()
    results = tmp_path / "results"
    path = results / "speed" / "darts_rnn_authors.json"
    load_avg = ([1.5, 1.0, 1.0], [2.5, 1.2, 1.0])
    module.write_record(path, *authors_run(300, 9000, 10000), load_avg, "2026-12-07T15:00:00Z")
    module.write_record(path, *authors_run(16, 3000, 6000), load_avg, "2026-12-07T15:00:00Z")
    module.write_record(path, *authors_run(16, 2800, 5600), load_avg, "2026-12-07T15:00:00Z")  # replaces hidden 16
    record = load(path.parent, "darts_rnn_authors.json")
    assert list(record["shapes"]) == ["hidden16_batch4_bptt35_vocab100", "hidden300_batch4_bptt35_vocab100"]
    entry = record["shapes"]["hidden16_batch4_bptt35_vocab100"]
    assert entry["environment"]["torch"] and "cpu" in entry["environment"]
    assert entry["sides"][0]["operators"] == 2800 and entry["load_average"]["after"] == [2.5, 1.2, 1.0]
    (tmp_path / "docs").mkdir()
    doc = tmp_path / "docs" / "benchmarks.md"
    doc.write_text("<!-- generated:speed/darts_rnn_authors -->\n<!-- /generated:speed/darts_rnn_authors -->\n")
    render(tmp_path, results, figures=False)
    text = doc.read_text()
    assert ("| hidden 16, tokens 4 x 35, vocabulary 100 | ours | 2,800 | 0.50 | 300 | 1.50 | 0.45 "
            "| 8.0e+02 (2e-06) | 1.5e-06 (3e-07) |") in text
    assert "|  | authors' | 5,600 | 1.00 | 200 | 1.00 | 1.00 |  |  |" in text
    assert "| hidden 300, tokens 4 x 35, vocabulary 100 | ours | 9,000 | 0.90 |" in text
    assert text.index("hidden 16,") < text.index("hidden 300,")
    assert "- hidden 16, tokens 4 x 35, vocabulary 100: 3 interleaved rounds, 1 thread(s)" in text
    assert "authors' code at f276dd3." in text and "torch " in text and "CPU " in text
    assert render(tmp_path, results, check=True) == []


@pytest.mark.parametrize("content", ["{not json", '{"shapes": {}}', '{"shapes": {"hidden16": {"options": {}}}}'])
def test_a_broken_authors_record_is_one_error_naming_the_file(tmp_path, content):
    results = tmp_path / "results"
    (results / "speed").mkdir(parents=True)
    (results / "speed" / "darts_rnn_authors.json").write_text(content)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "benchmarks.md").write_text(
        "<!-- generated:speed/darts_rnn_authors -->\n<!-- /generated:speed/darts_rnn_authors -->\n")
    with pytest.raises(ReportError, match="darts_rnn_authors.json") as error:
        render(tmp_path, results, check=True)
    assert "\n" not in str(error.value)


def test_the_shipped_authors_record_has_both_shapes_at_a_clean_commit():
    record = json.loads((ROOT / "results" / "speed" / "darts_rnn_authors.json").read_text())
    assert {"hidden16_batch4_bptt35_vocab100", "hidden300_batch32_bptt35_vocab10000"} <= set(record["shapes"])
    for entry in record["shapes"].values():
        assert entry["environment"]["commit"] and entry["environment"]["dirty"] is False
        assert {s["side"] for s in entry["sides"]} >= {"ours", "authors"}
        assert all(s["operators"] > 0 and s["matrix_products"] > 0 for s in entry["sides"])
