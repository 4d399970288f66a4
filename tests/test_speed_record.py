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
