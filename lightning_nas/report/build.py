"""Aggregate an experiment's trials into tables and plots: ``python -m lightning_nas.report EXPERIMENT_DIR``.

Reads every finished trial (a run directory with ``trial.json`` saying ``finished``, or, for run
directories made without the runner, a ``selection.json``) and writes to ``EXPERIMENT_DIR/report``:

- ``trials.csv``: one row per trial with its factor values and final numbers;
- ``summary.csv`` / ``summary.md``: per strategy and factor value, mean ± sample std (ddof=1) over
  seeds of the ground truth of each strategy's own answer (``selection.json``'s top level), sparse Kendall tau, Kendall tau, super-net
  accuracy (mean over the ranking set at the last ranking epoch), rank and p(beat random) (per run, and
  as Yu et al. aggregate it: the best rank over a group's seeds), paired t and Wilcoxon tests with effect
  sizes and the seeds a difference would need,
  and Welch's t-test of each group against a baseline group, as Table 1 of "Evaluating the Search
  Phase of NAS" (Yu et al., ICLR 2020) compares each algorithm with the random policy;
- plots as PNG, PDF and SVG: super-net score vs ground truth (coloured by rank change), Kendall /
  sparse Kendall tau over epochs, test regret over epochs (from ``decoding.csv``), and the influence
  of each factor on the final performance (Figure 10 of "How to Train Your Super-Net"); without
  matplotlib the tables are written all the same and ``summary.md`` says how to get the plots;
- the same plots as ``wandb.Image`` when the runs logged to W&B (``WANDB_MODE=offline`` works).

The baseline of the t-test is the random-policy group sharing most factor values when the
experiment has one (a strategy whose name contains "random"), else ``--baseline`` (a group label,
e.g. "SPOS bn_mode=batch"), else the first group. Only csv, numpy, scipy and matplotlib are used.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any, Optional

from lightning_nas.report.common import METRICS, ReportError
from lightning_nas.report.plots import plot_factors, plot_ranking, plot_regret, plot_score_vs_truth
from lightning_nas.report.rescore import load_table
from lightning_nas.report.runs import Run, baselines, factor_order, find_runs, group_runs
from lightning_nas.report.tables import markdown, write_tables


def log_to_wandb(experiment_dir: Path, out: Path, runs: list[Run], table: list[list[str]], plots: dict[str, str]) -> Optional[str]:
    """The report's plots and summary as one W&B run (job_type "report") in the runs' project."""
    import wandb

    run = wandb.init(project=runs[0].wandb_project, name=f"report-{experiment_dir.resolve().name}", job_type="report",
                     dir=str(out), config={"experiment_dir": str(experiment_dir.resolve())})
    try:
        payload: dict[str, Any] = {f"report/{Path(name).stem}": wandb.Image(str(out / name), caption=title)
                                   for title, name in plots.items()}
        payload["report/summary"] = wandb.Table(columns=table[0], data=table[1:])
        run.log(payload)
        return run.dir
    finally:
        run.finish()


MISSING_MATPLOTLIB = ("matplotlib is not installed, so no plots were drawn (the tables are complete); "
                      "install it with `pip install -e \".[experiments]\"` or `pip install matplotlib` and rerun "
                      "the report")


def _plots(groups, order, out: Path, notes: list[str], policy=None) -> dict[str, str]:
    """Draw every figure that has data (PNG + PDF + SVG); without matplotlib, a note instead."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        notes.append(MISSING_MATPLOTLIB)
        return {}
    plots: dict[str, str] = {}
    if plot_score_vs_truth(groups, out / "supernet_vs_truth.png"):
        plots["Super-net score vs ground truth (last ranking epoch)"] = "supernet_vs_truth.png"
    if plot_ranking(groups, out / "ranking_over_epochs.png"):
        plots["Ranking quality over epochs (mean over seeds, 95 % bootstrap CI)"] = "ranking_over_epochs.png"
    if plot_regret(groups, out / "regret_over_epochs.png",
                   exact_regret=policy.expected_regret(1) if policy is not None else None):
        plots["Test regret over epochs (mean over seeds, 95 % bootstrap CI)"] = "regret_over_epochs.png"
    else:
        notes.append("No decoding.csv in the runs: no regret-over-epochs plot.")
    final = plot_factors(groups, order, out / "factor_influence.png")
    if final:
        plots[f"Influence of each factor on {METRICS[final][0]} and ranking quality"] = "factor_influence.png"
    if plots:
        notes.append("Every figure is also written as PDF and SVG beside its PNG (same name).")
    return plots


def exact_policy(run_dir: Path, table=None):
    """The exact random policy when the runs' table (or ``--benchmark``'s) is complete, else None."""
    import yaml

    from lightning_nas.metrics.random_baseline import RandomPolicy
    from lightning_nas.results.extract import table_info

    if table is not None:
        complete = (getattr(table, "sidecar", {}).get("protocol") or {}).get("architectures") == "all"
        return RandomPolicy.from_table(list(table.table().values()), table.higher_is_better) if complete else None
    config = yaml.safe_load((run_dir / "config.yaml").read_text()) if (run_dir / "config.yaml").is_file() else {}
    try:
        return table_info(config or {})[1]
    except Exception:  # noqa: BLE001  a table that cannot be read leaves the sampled baseline
        return None


def build_report(experiment_dir: str | Path, out: str | Path | None = None, baseline: Optional[str] = None,
                 use_wandb: Optional[bool] = None, benchmark: Optional[str] = None,
                 metric: str = "test_accuracy_mean") -> Path:
    """Write the tables and plots; returns the path of ``summary.md``. With ``benchmark`` (a table's
    path or shipped name) every recorded architecture is looked up in it (``rescore.py``)."""
    experiment_dir = Path(experiment_dir)
    if not experiment_dir.is_dir():
        raise ReportError(f"EXPERIMENT_DIR {experiment_dir}: not a directory")
    truth = load_table(benchmark, metric) if benchmark is not None else None
    every = find_runs(experiment_dir, truth)
    runs = [r for r in every if r.status == "finished"]
    if not runs:
        raise ReportError(f"EXPERIMENT_DIR {experiment_dir}: no finished run directories "
                          f"(config.yaml with selection.json or trial.json) in it")
    out = Path(out) if out else experiment_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    order = factor_order(experiment_dir, runs)
    groups = group_runs(runs, order)
    base = baselines(groups, baseline)
    table = write_tables(groups, base, runs, out, list(order))

    notes = []
    if truth is not None:
        notes.append(f"Ground truth looked up by the report in `{truth.path.name}` (`{truth.metric}`, {len(truth)} "
                     f"architectures), not the values the runs recorded: every answer, ranking epoch and decoded "
                     f"architecture is the run's own, scored against this table.")
    if not any(math.isfinite(r.final["ground_truth"]) for r in runs):
        notes.append("No ground truth (the recipe had no `benchmark:`): ground truth, Kendall tau, best rank and "
                     "p(beat random) are unavailable; the factor plot uses the selected architecture's super-net "
                     "validation accuracy instead.")
    policy = exact_policy(runs[0].path, truth)
    if policy is not None:
        notes.append(f"The ground-truth table is complete ({policy.size} architectures): random search is "
                     "compared exactly (its distribution is the table's), not through sampled random runs.")
    plots = _plots(groups, order, out, notes, policy)
    summary = out / "summary.md"
    from lightning_nas.io import atomic_write_text

    atomic_write_text(summary, markdown(experiment_dir, groups, base, runs,
                                        [r for r in every if r.status != "finished"], plots, notes, policy))
    if use_wandb is None:
        use_wandb = any("wandb" in r.loggers for r in runs)
    if use_wandb:
        where = log_to_wandb(experiment_dir, out, runs, table, plots)
        print(f"[lightning_nas] report logged to W&B ({where})")
    return summary


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lightning_nas.report", description=__doc__.split("\n")[0])
    parser.add_argument("experiment_dir", metavar="EXPERIMENT_DIR")
    parser.add_argument("--out", default=None, help="output folder (default EXPERIMENT_DIR/report)")
    parser.add_argument("--baseline", default=None, help="label of the group the t-tests compare with")
    parser.add_argument("--wandb", choices=["auto", "yes", "no"], default="auto",
                        help="log the plots to W&B: auto = when the runs used the wandb logger")
    parser.add_argument("--benchmark", default=None, metavar="TABLE",
                        help="score the runs' architectures against this table (a path, or a shipped table's name "
                             "such as nb201_digits_729.csv) instead of the ground truth they recorded")
    parser.add_argument("--metric", default="test_accuracy_mean", help="the --benchmark table's column")
    args = parser.parse_args(argv)
    try:
        summary = build_report(args.experiment_dir, args.out, args.baseline,
                               {"auto": None, "yes": True, "no": False}[args.wandb], args.benchmark, args.metric)
    except ReportError as error:
        print(f"report: error: {error}", file=sys.stderr)
        return 2
    print(summary.read_text())
    print(f"[lightning_nas] report written to {summary.parent}")
    return 0

