"""Published results: records extracted from an experiment directory, tables and figures regenerated
from them, and the docs checked for drift against the shipped records (lightning_nas/results)."""
from __future__ import annotations

import csv
import json
import math
import os
import platform
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from lightning_nas.metrics import ranking_agreement
from lightning_nas.report.common import ReportError
from lightning_nas.metrics.random_baseline import RandomPolicy
from lightning_nas.results import Records, extract, render
from lightning_nas.results.__main__ import main
from lightning_nas.results.names import display_name, group_label
from lightning_nas.results.render import ROOT

TABLE = ROOT / "lightning_nas" / "benchmarks" / "tables" / "nb201_digits_729.csv"


def _table() -> list[tuple[str, float]]:
    with TABLE.open(newline="") as handle:
        return [(r["ArchitectureString"], float(r["test_accuracy_mean"])) for r in csv.DictReader(handle)]


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def make_experiment(root: Path) -> Path:
    """A tiny finished experiment on the complete 729-cell table: SPOS and DARTS (2nd order), 3 seeds,
    20 ranked architectures at epochs 9 and 19 (0-based file names), decoding for DARTS."""
    import torch

    table = _table()
    rng = np.random.default_rng(0)
    exp = root / "exp"
    exp.mkdir()
    recipes = ["recipes/nb201_digits_strategies/spos.yaml", "recipes/nb201_digits_strategies/darts_2nd.yaml"]
    (exp / "experiment.json").write_text(json.dumps({"seeds": [0, 1, 2], "grid": [
        {"label": "model", "keys": ["model"], "values": recipes}]}))
    for recipe, cls in zip(recipes, ["SPOS", "DARTS"], strict=True):
        for seed in range(3):
            run = exp / f"model={Path(recipe).stem}__seed{seed}"
            run.mkdir()
            config = {"seed_everything": seed, "model": {"class_path": f"lightning_nas.strategies.{cls}"},
                      "ranking": {"sparse_threshold": 0.1, "score": "accuracy"},
                      "benchmark": {"class_path": "lightning_nas.benchmarks.TabulatedBenchmark",
                                    "init_args": {"path": "nb201_digits_729.csv", "metric": "test_accuracy_mean",
                                                  "higher_is_better": True}}}
            (run / "config.yaml").write_text(yaml.safe_dump(config))
            (run / "trial.json").write_text(json.dumps({"seed": seed, "factors": {"model": recipe},
                                                        "status": "finished"}))
            (run / "run.json").write_text(json.dumps({
                "versions": {"python": "3.11.7", "torch": "2.13.0+cpu", "pytorch-lightning": "2.6.6"},
                "git": {"commit": "a" * 40, "dirty": False}, "torch_threads": 1,
                "cpu": {"vendor": "AuthenticAMD", "model": "AMD EPYC", "capability": "AVX2"}, "history": [{}]}))
            picks = rng.choice(len(table), 20, replace=False)
            for epoch in (9, 19):
                rows = []
                for i in picks:
                    arch, truth = table[i]
                    acc = round(float(np.clip(truth + rng.normal(0, 4), 0, 100)) / 100 * 192) / 192 * 100
                    rows.append([arch, f"{acc:.4f}", truth, f"{float(rng.uniform(0.2, 1.5)):.4f}"])
                _write_csv(run / "ranking" / f"epoch_{epoch:03d}.csv",
                           ["architecture", "supernet_accuracy", "ground_truth", "supernet_loss"], rows)
            arch, truth = table[int(picks[0])]
            best = max(v for _, v in table)
            selection = {"architecture": arch, "ground_truth": truth, "regret": best - truth,
                         "rank": 1 + sum(v > truth for _, v in table), "table_size": 729, "searches": 1,
                         "score": "accuracy", "supernet_val_accuracy": 90.0,
                         "answer_source": "decoded" if cls == "DARTS" else "shared-weight selection"}
            if cls == "SPOS":
                selection["finalists"] = [{"val_accuracy": 90.0}, {"val_accuracy": 90.0}, {"val_accuracy": 85.0}]
            else:
                _write_csv(run / "decoding.csv", ["epoch", "architecture", "test_regret", "ground_truth"],
                           [[e, arch, best - truth + 1.0 / (e + 1), truth] for e in range(4, 20, 5)])
                (run / "checkpoints").mkdir()
                alpha = torch.log(torch.tensor([[0.5, 0.3, 0.2], [0.34, 0.33, 0.33]]))
                torch.save({"state_dict": {"arch_weights.cell": alpha}}, run / "checkpoints" / "last.ckpt")
            (run / "selection.json").write_text(json.dumps(selection))
    unfinished = exp / "model=spos__seed3"
    unfinished.mkdir()
    (unfinished / "config.yaml").write_text(yaml.safe_dump({"seed_everything": 3}))
    return exp


@pytest.fixture(scope="module")
def shipped(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("published")
    exp = make_experiment(root)
    repo = root / "repo"
    (repo / "docs").mkdir(parents=True)
    folder = extract(exp, name="toy", out=repo / "results")
    return exp, folder


def test_extract_append_adds_later_seeds_once(tmp_path):
    """More seeds run later go into the same records: the union of trials, seeds and sources; appending
    the same directory again changes nothing; a run on another table is refused."""
    import shutil

    exp = make_experiment(tmp_path)
    first, later = tmp_path / "first", tmp_path / "later"
    first.mkdir(), later.mkdir()
    for run in exp.iterdir():
        if run.is_dir():
            shutil.copytree(run, (later if run.name.endswith("seed2") else first) / run.name)
    meta = json.loads((exp / "experiment.json").read_text())
    (first / "experiment.json").write_text(json.dumps({**meta, "seeds": [0, 1]}))
    (later / "experiment.json").write_text(json.dumps({**meta, "seeds": [2]}))
    out = tmp_path / "results"
    extract(first, name="toy", out=out)
    assert len((out / "toy" / "trials.jsonl").read_text().splitlines()) == 4
    folder = extract(later, name="toy", out=out, append=True)
    once = (folder / "trials.jsonl").read_text()
    assert once == (extract(exp, name="whole", out=out) / "trials.jsonl").read_text().replace('"whole"', '"toy"')
    merged = json.loads((folder / "experiment.json").read_text())
    assert merged["seeds"] == [0, 1, 2] and merged["trials"] == 6
    assert [s["source"] for s in merged["sources"]] == [str(first.resolve()), str(later.resolve())]
    extract(later, name="toy", out=out, append=True)
    assert (folder / "trials.jsonl").read_text() == once
    other = json.loads((folder / "experiment.json").read_text())
    other["benchmark"]["sha256"] = "0" * 64
    (folder / "experiment.json").write_text(json.dumps(other))
    with pytest.raises(ReportError, match="another ground-truth table"):
        extract(later, name="toy", out=out, append=True)


def test_display_names_come_from_one_mapping():
    assert display_name("recipes/nb201_digits_strategies/darts_2nd.yaml") == "DARTS (2nd order)"
    assert display_name("lightning_nas.strategies.PCDARTS") == "PC-DARTS"
    assert group_label("DARTS", {"model": "recipes/x/darts_2nd.yaml"}) == "DARTS (2nd order)"
    assert group_label("SPOS", {"ranking.bn_mode": "running"}) == "SPOS ranking.bn_mode=running"


def test_extract_writes_one_record_per_finished_trial(shipped):
    exp, folder = shipped
    lines = (folder / "trials.jsonl").read_text().splitlines()
    assert len(lines) == 6  # the unfinished trial is left out ...
    meta = json.loads((folder / "experiment.json").read_text())
    assert meta["unfinished"] == ["model=spos__seed3"]  # ... and named
    assert meta["benchmark"]["complete"] and meta["benchmark"]["size"] == 729
    records = [json.loads(line) for line in lines]
    darts = [r for r in records if r["strategy"] == "DARTS"]
    assert {r["group"] for r in records} == {"SPOS", "DARTS (2nd order)"}
    assert sorted(r["seed"] for r in darts) == [0, 1, 2]
    record = darts[0]
    # ranking/epoch_009.csv is the ranking after 10 epochs
    assert [e["epoch"] for e in record["ranking"]["epochs"]] == [10, 20]
    assert [d["epoch"] for d in record["decoding"]] == [5, 10, 15, 20]
    # correlations by accuracy and by loss, recomputed from the CSV with the default (authors') variant
    run = exp / record["trial"]
    with (run / "ranking" / "epoch_019.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    truth = [float(r["ground_truth"]) for r in rows]
    expected = ranking_agreement(truth, [float(r["supernet_accuracy"]) for r in rows], 0.1)
    last = record["ranking"]["epochs"][-1]
    for key, value in expected.items():
        assert last["by_accuracy"][key] == pytest.approx(value, abs=1e-6)
    assert last["by_loss"]["kendall_tau"] == pytest.approx(
        ranking_agreement(truth, [-float(r["supernet_loss"]) for r in rows], 0.1)["kendall_tau"], abs=1e-6)
    assert last["distinct_accuracy"] == len({r["supernet_accuracy"] for r in rows})
    assert record["ranking"]["final"]["ground_truth"] == pytest.approx(truth)
    # the exact p(beat random) of the answer, and the fragility of decoded answers
    values = [v for _, v in _table()]
    policy = RandomPolicy.from_table(values)
    assert record["answer"]["p_beat_random"] == pytest.approx(policy.p_beat(record["answer"]["ground_truth"]), abs=1e-6)
    assert record["answer"]["margins"]["edges"] == {"cell[0]": pytest.approx(0.2), "cell[1]": pytest.approx(0.01)}
    assert record["answer"]["margins"]["min"] == pytest.approx(0.01)
    spos = next(r for r in records if r["strategy"] == "SPOS")
    assert spos["answer"]["top_ties"] == 2
    env = record["environment"]
    assert (env["torch"], env["threads"], env["commit"], env["dirty"]) == ("2.13.0+cpu", 1, "a" * 40, False)
    assert env["cpu"]["capability"] == "AVX2"


def test_render_fills_blocks_and_detects_drift(shipped, tmp_path):
    _, folder = shipped
    repo = tmp_path / "repo"
    (repo / "docs").mkdir(parents=True)
    results = folder.parent
    doc = repo / "docs" / "findings.md"
    doc.write_text("# Findings\n\nprose stays\n<!-- generated:toy/comparison -->\nstale\n"
                   "<!-- /generated:toy/comparison -->\nmore prose\n<!-- generated:toy/score_study -->\n"
                   "<!-- /generated:toy/score_study -->\n")
    assert sorted(render(repo, results, check=True)) == ["docs/findings.md: toy/comparison",
                                                         "docs/findings.md: toy/score_study"]
    assert "stale" in doc.read_text()  # --check writes nothing
    render(repo, results, figures=False)
    text = doc.read_text()
    assert "stale" not in text and text.startswith("# Findings\n\nprose stays\n") and "\nmore prose\n" in text
    assert "| DARTS (2nd order) | 3 |" in text and "random policy (exact, 729 cells)" in text
    assert render(repo, results, check=True) == []  # regenerated: no drift
    doc.write_text(text.replace("| SPOS | 3 |", "| SPOS | 4 |", 1))  # a hand edit inside the first block
    assert render(repo, results, check=True) == ["docs/findings.md: toy/comparison"]
    assert main(["render", "--root", str(repo), "--results", str(results), "--check"]) == 1
    bad = repo / "README.md"
    bad.write_text("<!-- generated:toy/nonsense -->\n<!-- /generated:toy/nonsense -->\n")
    assert main(["render", "--root", str(repo), "--results", str(results), "--check"]) == 2


def test_render_is_deterministic_and_draws_every_figure(shipped, tmp_path):
    _, folder = shipped
    records = Records.load(folder)
    from lightning_nas.results.figures import draw_all
    from lightning_nas.results.tables import TABLES

    first = {name: table(records) for name, table in TABLES.items()}
    assert first == {name: table(Records.load(folder)) for name, table in TABLES.items()}
    drawn = draw_all(records, tmp_path / "a")
    again = draw_all(records, tmp_path / "b")
    assert [p.name for p in drawn] == ["toy_answers.png", "toy_kendall_over_epochs.png",
                                       "toy_sparse_kendall_over_epochs.png", "toy_regret_over_epochs.png"]
    for a, b in zip(drawn, again, strict=True):
        assert a.read_bytes() == b.read_bytes()


def test_the_repository_docs_match_the_shipped_records():
    """The drift test: every generated block in README.md and docs/*.md equals what the shipped
    records (results/) give today. A hand edit inside a block, a changed record or a changed
    statistic fails here; `python -m lightning_nas.results render` regenerates them."""
    drift = render(ROOT, check=True)
    assert drift == [], "docs differ from results/: run `python -m lightning_nas.results render`:\n" + "\n".join(drift)


def test_cpu_kind_is_recorded():
    from lightning_nas.run_record import cpu_kind, cpu_kind_key

    kind = cpu_kind()
    assert kind["machine"] == platform.machine()
    assert kind["capability"] and cpu_kind_key(kind).endswith(kind["capability"])
    assert cpu_kind_key({}) is None
    assert math.isfinite(float(os.cpu_count() or 1))
    # the nominal clock in the model name is not a CPU kind; another model or instruction set is
    xeon = {"vendor": "GenuineIntel", "model": "Intel(R) Xeon(R) Processor", "capability": "AVX512"}
    assert cpu_kind_key({**xeon, "model": "Intel(R) Xeon(R) Processor @ 2.80GHz"}) == cpu_kind_key(xeon)
    assert cpu_kind_key({**xeon, "model": "Intel(R) Xeon(R) Gold 6148"}) != cpu_kind_key(xeon)
    assert cpu_kind_key({**xeon, "capability": "AVX2"}) != cpu_kind_key(xeon)


def test_tie_break_spread_is_zero_without_score_ties_and_positive_with_them():
    from lightning_nas.results.tables import tie_break_spread

    truth = [float(v) for v in range(10)]
    assert tie_break_spread(truth, [v * 2 for v in truth], 0.1) == 0.0
    assert tie_break_spread(truth, [0.0] * 5 + [1.0] * 5, 0.1) > 0.05


def _shipped_quickstart() -> dict:
    return Records.load(ROOT / "results" / "quickstart").trials[0]


def test_rerun_comparison_needs_the_same_build_cpu_kind_and_threads():
    from lightning_nas.results.rerun import comparable, differences

    shipped = _shipped_quickstart()
    assert comparable(shipped, shipped) == (True, "")
    assert differences(shipped, shipped) == []
    other = json.loads(json.dumps(shipped))
    other["environment"]["cpu"]["capability"] = "AVX2" if shipped["environment"]["cpu"]["capability"] != "AVX2" else "AVX512"
    ok, why = comparable(shipped, other)
    assert not ok and "CPU kind" in why
    other = json.loads(json.dumps(shipped))
    other["environment"]["threads"] = 2
    assert not comparable(shipped, other)[0]
    other = json.loads(json.dumps(shipped))
    other["answer"]["rank"] = 55
    other["ranking"]["epochs"][-1]["by_accuracy"]["kendall_tau"] = 0.444
    assert differences(shipped, other) == [f"answer.rank: shipped {shipped['answer']['rank']}, rerun 55",
                                           f"epoch 100 by_accuracy kendall_tau: shipped "
                                           f"{shipped['ranking']['epochs'][-1]['by_accuracy']['kendall_tau']}, "
                                           f"rerun 0.444"]


@pytest.mark.slow
def test_quickstart_reruns_to_the_shipped_record(tmp_path):
    """Rerun the documented quickstart command and compare every published number with
    results/quickstart, on the same torch build, CPU kind and thread count only."""
    import subprocess
    import sys

    import torch

    from lightning_nas.results.extract import environment
    from lightning_nas.results.rerun import comparable, differences

    shipped = _shipped_quickstart()
    here = {"environment": {**environment({"versions": {"torch": torch.__version__}}, host_cpu=True),
                            "threads": shipped["environment"]["threads"]}}
    ok, why = comparable(shipped, here)
    if not ok:
        pytest.skip(f"not comparable here: {why}")
    run = tmp_path / "quickstart"
    subprocess.run([sys.executable, "train.py", "--recipe", "recipes/quickstart.yaml", "--run_dir", str(run)],
                   cwd=ROOT, check=True, env={**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "offline"},
                   capture_output=True)
    rerun = Records.load(extract(run, name="quickstart", out=tmp_path / "results", host_cpu=True)).trials[0]
    assert comparable(shipped, rerun)[0]
    assert differences(shipped, rerun) == []


def test_a_mean_interval_is_clipped_to_what_the_mean_can_attain():
    from lightning_nas.results.tables import _mean_ci_text

    unclipped = _mean_ci_text([80.0, 90.0], 2)
    assert float(unclipped.split("[")[1].split(",")[1].rstrip("]")) > 100  # Student t with 2 seeds: past 100 %
    assert _mean_ci_text([80.0, 90.0], 2, (70.0, 88.0)) == "85.00 [70.00, 88.00]"
    assert _mean_ci_text([0.9, 0.95, 0.2], 3, (-1.0, 1.0)).endswith(", 1.000]")


def test_table_statistics_come_from_the_table_itself(tmp_path):
    """Blocks named after a shipped table (``TABLE.csv/STATISTIC``) are computed from its per-seed
    columns: on a hand-made table the spread and operation means are the hand-computed values."""
    from lightning_nas.results.ground_truth import operations, reliability, spread

    path = tmp_path / "tiny.csv"
    cells = ["|skip_connect~0|+|skip_connect~0|avg_pool_3x3~1|", "|nor_conv_3x3~0|+|skip_connect~0|avg_pool_3x3~1|",
             "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|", "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"]
    values = [[70.0, 72.0, 71.0, 71.0], [80.0, 82.0, 81.0, 81.0], [84.0, 86.0, 85.0, 85.0], [90.0, 88.0, 89.0, 89.0]]
    _write_csv(path, ["ArchitectureString", "test_accuracy_mean"] + [f"test_accuracy_seed{s}" for s in range(4)]
               + [f"test_loss_seed{s}" for s in range(4)] + ["test_accuracy_std", "test_loss_std", "test_loss_mean"],
               [[c, float(np.mean(v)), *v, *[1 - x / 100 for x in v], 1.0, 0.01, 0.2]
                for c, v in zip(cells, values, strict=True)])
    row = spread(path).splitlines()[2].split(" | ")
    assert row[0] == "| 4" and row[2] == "89.00" and row[8] == "71.00" and row[9] == "81.50"
    assert row[-1] == "1 |"  # only the best cell lies within one point of the best
    by_count = {line.split(" | ")[0]: line for line in operations(path).splitlines()[2:]}
    assert by_count["| 2"] == "| 2 | - | 85.00 (1) | 71.00 (1) |"  # conv x2: cell 3; skip x2: cell 1
    assert "89.00 (1)" in by_count["| 3"]  # conv x3: cell 4
    assert reliability(path).splitlines()[2].startswith("| 4 (0-3) | 1.000 |")  # halves agree perfectly


def test_retest_compares_the_table_with_its_previous_tabulation(tmp_path, monkeypatch):
    """The ``retest`` block: Spearman and Kendall of the two tabulations' seed means, matched by
    architecture (not by row order), the top-quartile overlap and each table's best cell's rank in the other."""
    import json

    from scipy import stats

    from lightning_nas.results import ground_truth

    cells = [f"|nor_conv_3x3~0|+|skip_connect~0|avg_pool_3x3~{i}|" for i in range(8)]
    rng = np.random.default_rng(0)
    now = rng.normal(80, 3, size=(4, 8))
    before = now + rng.normal(0, 1, size=(4, 8))
    header = ["ArchitectureString", "test_accuracy_mean", "test_accuracy_std"] + [f"test_accuracy_seed{s}" for s in range(4)]
    current = tmp_path / "t.csv"
    _write_csv(current, header, [[c, now[:, i].mean(), now[:, i].std(), *now[:, i]] for i, c in enumerate(cells)])
    previous_dir = tmp_path / "previous"
    order = list(reversed(range(8)))  # another row order: matched by architecture
    _write_csv(previous_dir / "t.abc1234.csv", header, [[cells[i], before[:, i].mean(), 1.0, *before[:, i]] for i in order])
    (previous_dir / "t.abc1234.json").write_text(json.dumps({"git": {"commit": "abc1234", "dirty": True}}))
    monkeypatch.setattr(ground_truth, "PREVIOUS_TABLES", previous_dir)
    row = ground_truth.retest(current).splitlines()[2].split(" | ")
    a, b = now.mean(axis=0), before.mean(axis=0)
    assert row[0] == "| abc1234" and row[1] == "yes"
    assert row[2] == f"{stats.spearmanr(a, b).statistic:.3f}" and row[4] == f"{stats.kendalltau(a, b).statistic:.3f}"
    assert row[5] == f"{np.mean(np.abs(a - b)):.2f}"
    assert row[7] == str(1 + int(np.sum(b > b[np.argmax(a)])))


def test_factor_table_pairs_levels_by_seed(shipped):
    """The one-factor table pairs the two levels' trials by seed: its ground-truth difference is the
    mean of the per-seed differences, and its interval verdict follows the interval."""
    from lightning_nas.results.tables import factor_table

    _, folder = shipped
    records = Records.load(folder)
    by = {}
    for t in records.trials:
        by.setdefault(next(iter(t["factors"].values())), {})[t["seed"]] = t["answer"]["ground_truth"]
    first, second = records.experiment["grid"][0]["values"]  # the baseline is the grid's first value
    expected = np.mean([by[second][s] - by[first][s] for s in (0, 1, 2)])
    rows = [line for line in factor_table(records).splitlines() if "answer's ground truth" in line]
    assert len(rows) == 1
    cells = rows[0].split(" | ")
    assert cells[1] == "3" and cells[5].startswith(f"{expected:+.2f}")
    assert cells[-1].rstrip(" |") in ("above 0", "below 0", "inconclusive (contains 0)")


def test_factor_figure_and_level_names(shipped, tmp_path):
    """The factor-influence figure (Figure 10's layout) is drawn from the paired effects, nothing is drawn
    without a factor experiment, and a mapping-valued level is named by what it changes."""
    from lightning_nas.results.factors import Effect, factor_effects, factor_figure

    _, folder = shipped
    records = Records.load(folder)
    effects = factor_effects(records)
    assert {e.metric for e in effects} >= {"ground_truth", "sparse_kendall_tau"} and all(e.n == 3 for e in effects)
    for e in effects:  # the verdict is what the interval allows
        assert (e.verdict == "above 0") == (math.isfinite(e.low) and e.low > 0)
    assert factor_figure([records], tmp_path / "f.png").stat().st_size > 1000
    assert factor_figure([], tmp_path / "g.png") is None and not (tmp_path / "g.png").exists()
    # levels measured on another ground truth than most of the figure's name their table
    import copy

    from lightning_nas.results.factors import level_labels

    other = copy.deepcopy(records)
    other.name = "on_nb101"
    other.experiment.setdefault("benchmark", {})["table"] = "nb101_digits_91.csv"
    rows = [{e.metric: e} for e in factor_effects(records) if e.metric == "ground_truth"]
    rows += [{e.metric: e} for e in factor_effects(other) if e.metric == "ground_truth"]
    twin = copy.deepcopy(records)
    twin.name = "twin"  # two experiments on the shipped records' table, one on another
    labels, _ = level_labels([records, twin, other], rows)
    assert labels[-1].endswith(", on nb101_digits_91)") and "on nb101" not in labels[0]
    channels = Effect("findings_channels", "network", "network={C: 8, N: 1, affine: false}",
                      "network={C: 4, N: 1, affine: false}", "ground_truth", 85.0, 84.0, 10, -1.0, -2.0, 0.0,
                      0.05, 0.06)
    from lightning_nas.results.factors import _short_level

    assert _short_level(channels) == "network C: 8 → 4" and channels.category == "Low fidelity"
    assert channels.verdict == "inconclusive (contains 0)"
    # a grid over recipe files: each level's file names its factor
    for level, category in (("path_dropout", "Implementation"), ("ops_on_node", "Implementation"),
                            ("no_weight_decay", "Hyper-parameters"), ("fairnas", "Sampling"), ("other", "Other")):
        effect = Effect("findings_implementation", "model", "model=spos", f"model={level}", "ground_truth",
                        85.0, 84.0, 10, -1.0, -2.0, 0.0, 0.05, 0.06)
        assert effect.category == category, level
    assert _short_level(effect) == "other (vs spos)"


def test_power_table_states_what_the_seeds_allow(shipped):
    """Per group: the effect against the exact random mean, the seeds it needs for power 0.8, and the
    seeds for a +-0.05 interval of sparse Kendall tau, all from the group's own records."""
    from scipy import stats

    from lightning_nas.report.statistics import seeds_needed
    from lightning_nas.results.tables import own_score_agreement, power_table

    _, folder = shipped
    records = Records.load(folder)
    policy = records.policy()
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in power_table(records).splitlines()[2:]}
    for label, trials in records.groups().items():
        truth = [t["answer"]["ground_truth"] for t in trials]
        d = (np.mean(truth) - policy.mean()) / np.std(truth, ddof=1)
        assert rows[label][2] == f"{d:.2f}" and rows[label][4] == f"{seeds_needed(d, paired=True):.0f}"
        sparse = [own_score_agreement(t)["sparse_kendall_tau"] for t in trials]
        half = stats.t.ppf(0.975, len(sparse) - 1) * np.std(sparse, ddof=1) / math.sqrt(len(sparse))
        assert rows[label][6] == f"{half:.3f}"


# ------------------------------------------------------------------ no hand-written measured numbers
#: Published numbers are outputs (issue 19): in README.md and docs/*.md a number that looks measured
#: (a quantity with a unit of time, speed, size or a ratio; a percentage; a decimal with two or more
#: places; a count written with thousands separators) must sit in a generated block, a code block or
#: span, or a region marked ``<!-- paper-values: SOURCE -->`` / ``<!-- worked-example: TEST -->`` ...
#: ``<!-- /NAME -->``, or be allowed below as a fact from a paper or benchmark, a setting, or arithmetic.
#: A new hand-written measurement therefore fails here: render it from a record, or name the command.
MEASURED = re.compile(r"(?<![\w.\-/~^])(?:\d[\d,]*(?:\.\d+)?\s?(?:ms|s|min|minutes|seconds|hours|h|images/s|records/s|"
                      r"MB|GB|kB|KB|B|%)(?![\w/])|\d+(?:\.\d+)?[x×](?!\w)|\d+\.\d{2,}|\d{1,3}(?:,\d{3})+)")
GENERATED = re.compile(r"<!-- generated:(?P<n>[\w.-]+/[\w.-]+) -->\n.*?<!-- /generated:(?P=n) -->", re.DOTALL)
MARKED = re.compile(r"<!-- (?P<n>paper-values|worked-example): \S[^>]*-->.*?<!-- /(?P=n) -->", re.DOTALL)
FENCED = re.compile(r"^\s*```.*?^\s*```", re.DOTALL | re.MULTILINE)
#: pages whose numbers other work converts (listed so the exception is visible, not silent):
#: (none left: every page is scanned)
PENDING: set[str] = set()
#: settings that recur on many pages: confidence level, significance level, chance level of a quartile,
#: the papers' learning rates, betas and momenta, versions (Python 3.10, torch 2.13)
SETTINGS = {"95 %", "0.05", "25 %", "0.25", "0.025", "0.001", "0.999", "0.997", "0.003", "3.10", "2.13"}
ALLOWED: dict[str, set[str]] = {
    # 5^6 NB201 cells (arithmetic)
    "README.md": {"15,625"},
    # NAS-Bench-201's listed sizes of its smallest and largest network
    "docs/architecture.md": {"0.073 MB", "1.531 MB"},
    # file sizes as the benchmarks' authors list them
    "docs/benchmark_files.md": {"2.2 GB", "4.7 GB", "499 MB", "2.0 GB"},
    # |S| = (180 x 7^8)^2 (arithmetic); DARTS' released log's parameter count; DARTS' hyperparameters;
    # CIFAR-10's 50,000 training images and DARTS' 25,000 / 25,000 split
    "docs/darts_cnn.md": {"1.08", "3,349,342", "25,000", "50,000"},
    # issue 19's reported rerun (Kendall tau 0.444 on the reporters' machines); chance accuracy of a
    # broken cell on 10 classes; the plot's tolerance for drawing two equal curves once
    "docs/experiments.md": {"0.444", "10 %", "0.005"},
    # the digits split (1,078 training images; 3 x 360 = 1,080 test images); the noise std 0.2 x 255
    "docs/ground_truth.md": {"15,625", "1,078", "1,080", "0.2 x"},
    # Yu et al. (2020) Table 3: NB101 size, best ranks and p; the paper's 0.1 % threshold
    "docs/metrics.md": {"0.1 %", "10 %", "423,624", "57,079", "19,552", "96,939", "0.24", "0.62", "0.07"},
    # Zela et al.'s best test accuracies per space (their released data)
    "docs/nb101.md": {"0.9455128312", "0.9424078465", "0.9466145635"},
    # NDS' 5,000 sampled DARTS cells (Radosavovic et al.); CIFAR's 50,000 training images
    "docs/nds.md": {"5,000", "50,000"},
    # AWD-LSTM's window probability 0.95; ENAS' init range 0.04; Li & Talwalkar's candidate counts
    "docs/rnn_space.md": {"0.95", "0.04", "0.75", "2,000", "1,000"},
    # the strategies' published settings: ENAS' baseline decay 0.99, FairNAS' lr 0.045 (its MobileNet space),
    # DARTS' Hessian step 0.01 / ||g||, BayesNAS' lambda 0.01; the papers' 10,000 validation images; Yu et
    # al.'s NAO pool of 20 % (App. C.6); the quickstart's architecture split 0.375 = (1 - 0.25) / 2
    "docs/strategies.md": {"0.99", "0.045", "0.01", "10,000", "20 %", "0.375"},
    # hpbandster's BOHB default: the model's top 15 % of observations (Falkner et al. 2018)
    "docs/blackbox.md": {"15 %"},
    # issue 25's target: DARTS first order at most 4x SPOS in operators per step
    "docs/benchmarks.md": {"4x"},
    # the plain progress line's interval (a setting)
    "docs/run_directory.md": {"10 seconds"},
}


def hand_written_numbers(text: str) -> list[tuple[int, str]]:
    """(line, token) of every measured-looking number outside generated blocks, marked regions,
    fenced and indented code, and inline code spans."""
    blank = lambda m: "\n" * m.group(0).count("\n")  # noqa: E731 - keeps line numbers
    text = FENCED.sub(blank, MARKED.sub(blank, GENERATED.sub(blank, text)))
    found, previous_blank, in_code = [], True, False
    for number, line in enumerate(text.splitlines(), start=1):
        in_code = line.startswith("    ") and (previous_blank or in_code) and not line.lstrip().startswith(("-", "|"))
        previous_blank = not line.strip()
        if in_code:
            continue
        found += [(number, m.group(0)) for m in MEASURED.finditer(re.sub(r"`[^`\n]*`", "``", line))]
    return found


def test_the_guard_finds_hand_written_measurements():
    """The scan flags what a measurement looks like and skips what the rule exempts."""
    text = ("Step time 83 ms, 14x faster, 9,900 records/s, tau 0.475, 38 % of pairs.\n"
            "Settings: 8 seeds, lr 0.1, `0.475 in code`.\n"
            "<!-- generated:x/y -->\n| 0.123 |\n<!-- /generated:x/y -->\n"
            "<!-- paper-values: DARTS -->\n| 0.75 |\n<!-- /paper-values -->\n"
            "```\ntime 12.5 s\n```\n\n    indented 3.14159\n")
    assert [t for _, t in hand_written_numbers(text)] == ["83 ms", "14x", "9,900 records/s", "0.475", "38 %"]
    assert hand_written_numbers("<!-- paper-values -->\n0.75\n<!-- /paper-values -->\n") == [(2, "0.75")]  # no source


def test_docs_hand_write_no_measured_numbers():
    """README.md and docs/*.md: every measured-looking number outside generated blocks is allowed
    above with its reason (a paper's fact, a setting, arithmetic). A failure names the file, line and
    number: render it from a shipped record (`results/`, `lightning_nas/results/properties.py`), or
    withdraw it and name the command that measures it."""
    from lightning_nas.results.render import documents

    offending = []
    for path in documents(ROOT):
        name = str(path.relative_to(ROOT))
        if name in PENDING:
            continue
        allowed = SETTINGS | ALLOWED.get(name, set())
        offending += [f"{name}:{line}: {token}" for line, token in hand_written_numbers(path.read_text())
                      if token not in allowed]
    assert offending == [], "hand-written measured-looking numbers:\n" + "\n".join(offending)


def test_code_blocks_are_computed_from_the_code(tmp_path):
    """``code/NAME`` blocks are properties computed at render time: the sizes of NB101Space and the
    parameter count of an NB201 network built the ordinary way; an unknown name is one error."""
    from lightning_nas.nn.nb201 import NB201Network
    from lightning_nas.results.render import render_text
    from lightning_nas.spaces.nb101 import NB101Space
    from lightning_nas.spaces.nb201 import NB201Architecture

    text, changed = render_text("<!-- generated:code/nb101_space_sizes -->\n<!-- /generated:code/nb101_space_sizes -->\n"
                                "<!-- generated:code/nb201_parameters -->\n<!-- /generated:code/nb201_parameters -->\n",
                                tmp_path, {})
    assert changed == ["code/nb101_space_sizes", "code/nb201_parameters"]
    for n in (3, 7):
        assert f"| {n} |" in text and f"| {NB101Space(num_vertices=n).size:,} |" in text
    largest = NB201Network(num_classes=10, C=16, N=5, arch=NB201Architecture(("nor_conv_3x3",) * 6))
    assert f"| `nor_conv_3x3` | {sum(p.numel() for p in largest.parameters()):,} |" in text
    with pytest.raises(ReportError, match="no property 'nonsense'"):
        render_text("<!-- generated:code/nonsense -->\n<!-- /generated:code/nonsense -->\n", tmp_path, {})


def test_factor_baseline_is_the_grids_first_value():
    """Trials are stored by name ({C: 4} before {C: 8}); the baseline is the grid's first value as the
    command wrote it, so the difference reads C = 4 - C = 8 and its sign follows."""
    from lightning_nas.results.factors import factor_effects

    def trial(level: str, seed: int, truth: float) -> dict:
        return {"factors": {"network": level}, "seed": seed, "answer": {"ground_truth": truth},
                "ranking": {"score": "loss", "epochs": [{"by_loss": {"sparse_kendall_tau": truth / 100}}]}}

    c4, c8 = "{C: 4, N: 1}", "{C: 8, N: 1}"
    records = Records("findings_channels", {"grid": [{"label": "network", "values": [c8, c4]}]},
                      [trial(c4, 0, 80.0), trial(c4, 1, 81.0), trial(c8, 0, 82.0), trial(c8, 1, 84.0)])
    truth = next(e for e in factor_effects(records) if e.metric == "ground_truth")
    assert (truth.baseline, truth.level) == (f"network={c8}", f"network={c4}")
    assert truth.mean == pytest.approx(-2.5) and truth.baseline_mean == pytest.approx(83.0)


def test_subspace_statistic_groups_cells_by_the_spaces_fixed_width_subspaces(tmp_path):
    """``TABLE.csv/subspaces``: cells grouped by ``space.subspace`` (NB101: edges into the output) from
    the space its sidecar's protocol names; a space without such sub-spaces is refused in one line."""
    import json

    from lightning_nas.report.common import ReportError
    from lightning_nas.results.ground_truth import subspaces

    cells = {"0001.0000.0000.0000|input,conv3x3-bn-relu,conv3x3-bn-relu,output": 30.0,   # input -> output only
             "0010.0000.0001.0000|input,conv3x3-bn-relu,conv3x3-bn-relu,output": 70.0,   # one edge into the output
             "0010.0000.0001.0000|input,maxpool3x3,conv3x3-bn-relu,output": 60.0,
             "0110.0001.0001.0000|input,conv3x3-bn-relu,maxpool3x3,output": 50.0}        # two edges into it
    path = tmp_path / "nb101.csv"
    _write_csv(path, ["ArchitectureString", "test_accuracy_mean"], [[c, v] for c, v in cells.items()])
    path.with_suffix(".json").write_text(json.dumps({"protocol": {"space": "nb101",
                                                                  "space_options": {"num_vertices": 4}}}))
    lines = subspaces(path).splitlines()[2:]
    assert lines == ["| 0 | 1 | 30.00 | 30.00 | 30.00 | - |", "| 1 | 2 | 70.00 | 65.00 | 60.00 | 7.07 |",
                     "| 2 | 1 | 50.00 | 50.00 | 50.00 | - |"]
    path.with_suffix(".json").write_text(json.dumps({"protocol": {"space": "nb201"}}))
    _write_csv(path, ["ArchitectureString", "test_accuracy_mean"], [["|skip_connect~0|+|skip_connect~0|skip_connect~1|", 1.0]])
    with pytest.raises(ReportError, match="no sub-spaces"):
        subspaces(path)


def test_a_lower_is_better_experiment_reads_in_its_own_metric_and_score():
    """The 2-node PTB records (perplexity's log, lower is better; ranked by super-net loss): the random
    policy's row gives the table's mean loss, not its negation, and each trial's correlations are those
    of the score the run ranked with."""
    from lightning_nas.benchmarks import TabulatedBenchmark
    from lightning_nas.results.tables import comparison_table, final_epoch, trials_table

    records = Records.load(ROOT / "results" / "rnn2_strategies")
    info = records.experiment["benchmark"]
    table = TabulatedBenchmark(info["table"], metric=info["metric"], higher_is_better=info["higher_is_better"])
    assert not table.higher_is_better
    row = [line for line in comparison_table(records).splitlines() if line.startswith("| random policy")][0]
    assert row.split(" | ")[2] == f"{np.mean(list(table.table().values())):.2f}"
    spos = [line for line in trials_table(records).splitlines() if line.startswith("| SPOS |")]
    for trial, line in zip(records.groups()["SPOS"], spos, strict=True):
        by_loss = final_epoch(trial)["by_loss"]
        assert trial["ranking"]["score"] == "loss"
        assert line.endswith(f"| {by_loss['kendall_tau']:.3f} / {by_loss['sparse_kendall_tau']:.3f} |")
