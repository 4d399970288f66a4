"""The report's CSV and Markdown tables."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

from lightning_nas.report.common import METRICS, NAN, TESTED
from lightning_nas.report.runs import Group, Run
from lightning_nas.report.statistics import fmt, mean_std, summarize, welch


def write_tables(groups: list[Group], base: dict[str, Optional[Group]], runs: list[Run], out: Path,
                 factor_names: list[str]) -> list[list[str]]:
    """trials.csv and summary.csv; returns the summary rows (for Markdown and W&B)."""
    from lightning_nas.io import atomic_write_csv

    atomic_write_csv(out / "trials.csv", ["trial", "strategy", *factor_names, "seed", "status", *METRICS],
                     ([r.name, r.strategy, *(r.factors.get(k, "") for k in factor_names), r.seed, r.status,
                       *(r.final.get(m, NAN) for m in METRICS)] for r in runs))
    header = ["group", "strategy", *factor_names, "n", "baseline"]
    for metric in METRICS:
        header += [f"{metric}_mean", f"{metric}_std"]
    for metric in TESTED:
        header += [f"{metric}_welch_t", f"{metric}_welch_p"]
    rows = []
    for g in groups:
        row = [g.label, g.strategy, *(v for _, v in g.factors), str(len(g.runs)), base[g.label].label if base[g.label] else ""]
        for metric in METRICS:
            _, mean, std = summarize(g.values(metric))
            row += [repr(mean), repr(std)]
        for metric in TESTED:
            t, p = welch(g.values(metric), base[g.label].values(metric)) if base[g.label] else (NAN, NAN)
            row += [repr(t), repr(p)]
        rows.append(row)
    atomic_write_csv(out / "summary.csv", header, rows)
    return [header, *rows]


def markdown(experiment_dir: Path, groups: list[Group], base: dict[str, Optional[Group]], runs: list[Run],
             skipped: list[Run], plots: dict[str, str], notes: list[str]) -> str:
    metrics = [m for m in METRICS if any(math.isfinite(v) for g in groups for v in g.values(m))]
    lines = [f"# Experiment report: {experiment_dir}", "",
             f"{len(runs)} finished trials in {len(groups)} groups"
             + (f"; {len(skipped)} not finished and left out: {', '.join(r.name for r in skipped)}" if skipped else "")
             + ". Mean ± sample standard deviation over seeds.", ""]
    lines += ["| group | n | " + " | ".join(METRICS[m][0] for m in metrics) + " |",
              "|---|---|" + "---|" * len(metrics)]
    for g in groups:
        lines.append(f"| {g.label} | {len(g.runs)} | "
                     + " | ".join(mean_std(g.values(m), METRICS[m][1]) for m in metrics) + " |")
    final = "ground_truth" if "ground_truth" in metrics else "selected_supernet_accuracy"
    tested = [m for m in (final, "sparse_kendall_tau", "supernet_accuracy") if m in metrics]
    if tested:
        lines += ["", "Welch's t-test (unequal variances) of each group against its baseline "
                  "(as Table 1 of Yu et al., ICLR 2020): two-sided p-values.", "",
                  "| group | baseline | " + " | ".join(f"{METRICS[m][0]} | p" for m in tested) + " |",
                  "|---|---|" + "---|---|" * len(tested)]
        for g in groups:
            b = base[g.label]
            cells = []
            for m in tested:
                p = welch(g.values(m), b.values(m))[1] if b else NAN
                cells += [mean_std(g.values(m), METRICS[m][1]), ("<0.001" if p < 0.001 else fmt(p, 3)) if b else "baseline"]
            lines.append(f"| {g.label} | {b.label if b else '-'} | " + " | ".join(cells) + " |")
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    for title, name in plots.items():
        lines += ["", f"## {title}", "", f"![{title}]({name})"]
    return "\n".join(lines) + "\n"
