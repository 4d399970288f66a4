"""``python -m lightning_nas.report --benchmark TABLE``: runs scored against a table given to the
report equal runs that had the table while they trained (``lightning_nas/report/rescore.py``)."""
from __future__ import annotations

import csv
import hashlib
import math
from pathlib import Path

import pytest

from conftest import TINY_RECIPE, run_train
import lightning_nas.spaces  # noqa: F401  (registers the spaces)
from lightning_nas.registry import SPACES
from lightning_nas.report import load_run, main
from lightning_nas.report.rescore import load_table

OPERATIONS = "[skip_connect, nor_conv_3x3]"  # 2^6 = 64 cells: a complete table of a tiny sub-space


def complete_table(path: Path) -> Path:
    """Every cell of the sub-space with a made-up accuracy (a hash of its key)."""
    space = SPACES.get("nb201")(operations=["skip_connect", "nor_conv_3x3"])
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ArchitectureString", "test_accuracy_mean"])
        for arch in space.enumerate():
            key = space.key(arch)
            writer.writerow([key, 50 + int(hashlib.sha1(key.encode()).hexdigest()[:6], 16) % 4000 / 100])
    return path


def darts_run(tmp_path: Path, name: str, benchmark: list[str]) -> Path:
    run_dir = tmp_path / name
    args = ["--recipe", TINY_RECIPE, "--model", "lightning_nas.strategies.DARTS",
            "--model.init_args.space_options", f"{{operations: {OPERATIONS}}}", "--data.init_args.arch_split", "0.3",
            "--trainer.max_epochs", "2", "--ranking.every_n_epochs", "1", *benchmark, "--run_dir", run_dir]
    assert run_train(args, tmp_path) == 0
    return run_dir


def test_rescored_run_equals_a_run_that_had_the_table(tmp_path: Path) -> None:
    table_path = complete_table(tmp_path / "table.csv")
    scored = darts_run(tmp_path, "with_table", ["--benchmark", "lightning_nas.benchmarks.TabulatedBenchmark",
                                                "--benchmark.init_args.path", table_path])
    blind = darts_run(tmp_path, "without_table", ["--benchmark", "null"])
    without = load_run(blind)
    assert math.isnan(without.final["ground_truth"]) and "kendall_tau" not in without.ranking_history

    expected, rescored = load_run(scored), load_run(blind, load_table(str(table_path), "test_accuracy_mean"))
    assert rescored.answer_source == expected.answer_source != ""
    for key, value in expected.final.items():
        assert rescored.final[key] == pytest.approx(value, nan_ok=True), key
    assert math.isfinite(rescored.final["ground_truth"]) and math.isfinite(rescored.final["sw_ground_truth"])
    assert rescored.table_size == expected.table_size == 64
    for metric in ("kendall_tau", "sparse_kendall_tau", "spearman"):
        assert set(rescored.ranking_history[metric]) == {0, 1}
        assert rescored.ranking_history[metric] == pytest.approx(expected.ranking_history[metric]), metric
    assert rescored.regret and rescored.regret == pytest.approx(expected.regret)
    assert [v for pair in rescored.ranking_table for v in pair] == \
        pytest.approx([v for pair in expected.ranking_table for v in pair])


def test_report_benchmark_option_and_its_errors(tmp_path: Path, capsys) -> None:
    table_path = complete_table(tmp_path / "table.csv")
    experiment = tmp_path / "exp"
    experiment.mkdir()
    darts_run(experiment, "run", ["--benchmark", "null"])
    assert main([str(experiment), "--benchmark", str(table_path), "--wandb", "no"]) == 0
    summary = (experiment / "report" / "summary.md").read_text()
    assert "looked up by the report in `table.csv`" in summary and "64 architectures" in summary
    row = next(csv.DictReader((experiment / "report" / "trials.csv").open()))
    assert math.isfinite(float(row["ground_truth"]))
    capsys.readouterr()
    assert main([str(experiment), "--benchmark", str(tmp_path / "nope.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("report: error: --benchmark") and "nope.csv" in err and "\n" not in err
    assert main([str(experiment), "--benchmark", str(table_path), "--metric", "val_accuracy"]) == 2
    assert "val_accuracy" in capsys.readouterr().err
