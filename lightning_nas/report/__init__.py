"""Aggregate an experiment's trials into tables and plots: ``python -m lightning_nas.report EXPERIMENT_DIR``.

``build.py`` drives it; ``runs.py`` reads and groups trial directories, ``statistics.py`` holds the
summary statistics and Welch's t-test, ``tables.py`` and ``plots.py`` write the outputs.
"""
from lightning_nas.report.build import build_report, log_to_wandb, main
from lightning_nas.report.common import METRICS, ReportError
from lightning_nas.report.plots import factor_effects
from lightning_nas.report.runs import Group, Run, baselines, factor_order, find_runs, group_runs, load_run
from lightning_nas.report.statistics import fmt, mean_std, summarize, welch

__all__ = ["METRICS", "Group", "ReportError", "Run", "baselines", "build_report", "factor_effects", "factor_order",
           "find_runs", "fmt", "group_runs", "load_run", "log_to_wandb", "main", "mean_std", "summarize", "welch"]
