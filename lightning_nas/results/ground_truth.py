"""Tables computed from a shipped ground-truth table itself (its CSV and sidecar), not from runs.

A docs block ``<!-- generated:nb201_digits_729.csv/reliability -->`` names the table file (resolved
among the shipped tables like any recipe's ``benchmark.path``) and one of :data:`TABLE_STATISTICS`.
The statistics are those the tabulator writes into the sidecar (``tabulate/noise.py``), recomputed
from the per-seed columns, so a docs number can never drift from the file that ships.
"""
from __future__ import annotations

import statistics
from pathlib import Path
from typing import Callable

import numpy as np

from lightning_nas.report.common import ReportError


def _columns(path: Path, metric: str) -> tuple[list[int], np.ndarray]:
    """The seeds of ``metric`` and the (seeds x architectures) array of their values."""
    import csv

    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    prefix = f"{metric}_seed"
    seeds = sorted(int(name[len(prefix):]) for name in rows[0] if name.startswith(prefix))
    if not seeds:
        raise ReportError(f"{path}: no per-seed columns {prefix}N")
    return seeds, np.array([[float(r[f"{prefix}{s}"]) for r in rows] for s in seeds])


def _ranked(path: Path) -> tuple[str, str]:
    """(the ground-truth metric, the other metric of the table): ``test_accuracy`` and ``test_loss`` for
    tables with test columns; ``val_loss`` and ``val_accuracy`` for tables ranked by a validation loss
    (the PTB perplexity tables, ``evaluate: [val]``, read with ``higher_is_better: false``)."""
    with path.open() as handle:
        header = handle.readline()
    if "test_accuracy_seed" not in header and "val_loss_seed" in header:
        return "val_loss", "val_accuracy"
    return "test_accuracy", "test_loss"


def reliability(path: Path) -> str:
    """Split-half reliability and seed-to-seed agreement of the seed mean, for the first 4, 6, ... seeds
    (what each extension of the table bought); also Kendall tau where the table is ranked by a loss."""
    from lightning_nas.tabulate.noise import noise_ceiling

    metric, other = _ranked(path)
    seeds, _ = _columns(path, metric)
    kendall = metric != "test_accuracy"  # accuracy tables keep their published columns
    lines = ["| seeds | split-half reliability (Spearman-Brown) | top-quartile agreement (chance 0.25) | "
             "seed-to-seed Spearman | its Spearman-Brown for all seeds | better half: Spearman-Brown | "
             + ("seed-to-seed Kendall tau | " if kendall else "")
             + f"{other.replace('_', ' ')}: split-half reliability |",
             "|---|---|---|---|---|---|---|" + ("---|" if kendall else "")]
    if kendall:
        lines[0] = lines[0].replace("| seeds |", f"| seeds ({metric.replace('_', ' ')}) |", 1)
    for count in sorted({*range(4, len(seeds) + 1, 2), len(seeds)} - {0, 1, 2, 3}) or [len(seeds)]:
        used = seeds[:count]
        ceiling = noise_ceiling(path, used, [metric, other])
        acc, loss = ceiling[metric], ceiling[other]
        lines.append(f"| {count} ({used[0]}-{used[-1]}) | {acc['split_half']['spearman_brown']:.3f} | "
                     f"{acc['split_half']['top_quartile_agreement']:.3f} | "
                     f"{acc['all']['seed_to_seed_spearman']:.3f} | {acc['all']['spearman_brown_mean_of_seeds']:.3f} | "
                     f"{acc['better_half']['spearman_brown_mean_of_seeds']:.3f} | "
                     + (f"{acc['all']['seed_to_seed_kendall']:.3f} | " if kendall else "")
                     + f"{loss['split_half']['spearman_brown']:.3f} |")
    return "\n".join(lines)


def _seed_mean_spread(path: Path, metric: str) -> tuple[np.ndarray, float, float, np.ndarray, int]:
    """The seed means of ``metric``, the per-seed sd (mean over cells), the standard error of one mean,
    the 10/25/50/75/90 % quantiles of the means and the number of distinct rows of per-seed values."""
    seeds, values = _columns(path, metric)
    means = values.mean(axis=0)
    seed_sd = float(np.mean(values.std(axis=0, ddof=1)))
    quantiles = np.quantile(means, [0.1, 0.25, 0.5, 0.75, 0.9])
    distinct = len({tuple(column) for column in values.T.tolist()})
    return means, seed_sd, seed_sd / float(np.sqrt(len(seeds))), quantiles, distinct


def spread(path: Path) -> str:
    """The spread of the seed means, the standard error of one mean, and how many cells the seed noise
    cannot separate from the best."""
    metric, _ = _ranked(path)
    if metric != "test_accuracy":
        return _loss_spread(path, metric)
    means, seed_sd, se, quantiles, distinct = _seed_mean_spread(path, "test_accuracy")
    best = float(means.max())
    lines = ["| cells | distinct rows | best | 10 % | 25 % | median | 75 % | 90 % | worst | mean | "
             "per-seed sd (mean over cells) | standard error of a cell's mean | cells within 1 point of the best |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    lines.append(f"| {len(means)} | {distinct} | {best:.2f} | " + " | ".join(f"{q:.2f}" for q in quantiles)
                 + f" | {float(means.min()):.2f} | {statistics.fmean(means.tolist()):.2f} | {seed_sd:.2f} | "
                 f"{se:.2f} | {int(np.sum(means > best - 1.0))} |")
    return "\n".join(lines)


def _loss_spread(path: Path, metric: str) -> str:
    """``spread`` of a lower-is-better table (log-perplexity: differences of hundredths matter): best is
    the lowest, four decimals, and the cells within two standard errors of a mean of the best."""
    means, seed_sd, se, quantiles, distinct = _seed_mean_spread(path, metric)
    best = float(means.min())
    lines = [f"| cells | distinct rows | best (lowest {metric.replace('_', ' ')}) | 10 % | 25 % | median | 75 % | "
             "90 % | worst | mean | per-seed sd (mean over cells) | standard error of a cell's mean | "
             "cells within 2 standard errors of the best |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    lines.append(f"| {len(means)} | {distinct} | {best:.4f} | " + " | ".join(f"{q:.4f}" for q in quantiles)
                 + f" | {float(means.max()):.4f} | {statistics.fmean(means.tolist()):.4f} | {seed_sd:.4f} | "
                 f"{se:.4f} | {int(np.sum(means < best + 2 * se))} |")
    return "\n".join(lines)


def operations(path: Path) -> str:
    """Mean ground truth of the cells with exactly k edges of each operation (NB201 cell strings): how
    strongly the table resolves what the operations do."""
    import csv
    import re

    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    ops_per_cell = [re.findall(r"\|([a-z_0-9x]+)~\d+", r["ArchitectureString"]) for r in rows]
    names = sorted({op for ops in ops_per_cell for op in ops})
    edges = max(len(ops) for ops in ops_per_cell)
    lines = ["| edges with the operation | " + " | ".join(f"{n}: mean (cells)" for n in names) + " |",
             "|---|" + "---|" * len(names)]
    for k in range(edges + 1):
        cells = []
        for name in names:
            values = [float(r["test_accuracy_mean"]) for r, ops in zip(rows, ops_per_cell, strict=True)
                      if ops.count(name) == k]
            cells.append(f"{statistics.fmean(values):.2f} ({len(values)})" if values else "-")
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def subspaces(path: Path) -> str:
    """The table by the space's sub-spaces of fixed widths (``space.subspace``; NB101: edges into the
    output, "How to Train Your Super-Net" Sec. 4.5): cells, seed-mean spread and the best cell of each,
    i.e. what a ranking within one sub-space (baseline-v2) has to order."""
    import csv
    import json

    from lightning_nas.spaces import SPACES, SearchSpace

    protocol = json.loads(path.with_suffix(".json").read_text()).get("protocol") or {}
    space = SPACES.get(protocol["space"])(**(protocol.get("space_options") or {}))
    if type(space).subspace is SearchSpace.subspace:
        raise ReportError(f"{path.name}: the {space.name} space has no sub-spaces of fixed widths")
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    groups: dict = {}
    for row in rows:
        groups.setdefault(space.subspace(space.parse(row["ArchitectureString"])), []).append(
            float(row["test_accuracy_mean"]))
    lines = ["| sub-space (edges into the output) | cells | best | mean | worst | sd of the seed means |",
             "|---|---|---|---|---|---|"]
    for group, values in sorted(groups.items()):
        sd = f"{statistics.stdev(values):.2f}" if len(values) > 1 else "-"
        lines.append(f"| {group} | {len(values)} | {max(values):.2f} | {statistics.fmean(values):.2f} | "
                     f"{min(values):.2f} | {sd} |")
    return "\n".join(lines)


def cost(path: Path) -> str:
    """What the table cost, from its sidecar: trainings, CPU time, per training, and the git state it
    was made at (a dirty tree cannot be regenerated bit for bit; ``docs/ground_truth.md`` says so).
    Loss-ranked tables (PTB) add the mean CPU seconds of a training from their ``.times.csv``: made on
    a shared CPU, their wall clock measures the other load as much as the protocol (accuracy tables
    keep their published columns)."""
    import csv
    import json

    side = json.loads(path.with_suffix(".json").read_text())
    seeds = len(side.get("seeds", []))
    cells = side.get("architectures_in_table_order") or 0
    seconds = float(side.get("train_seconds") or 0.0)
    times = path.with_name(f"{path.stem}.times.csv")
    if side.get("status") == "partial":
        # a partial merge (shards still running: their sidecars hold no totals yet): the cells it has,
        # and their wall clock from the times file
        with path.open(newline="") as handle:
            cells = sum(1 for _ in csv.DictReader(handle))
        if not seconds and times.is_file():
            with times.open(newline="") as handle:
                seconds = sum(float(r["train_seconds_mean"]) * seeds for r in csv.DictReader(handle))
    trainings = seeds * int(cells)
    git = side.get("git") or {}
    cpu_column = _ranked(path)[0] != "test_accuracy" and times.is_file()
    cpu = ""
    if cpu_column:
        with times.open(newline="") as handle:
            values = [float(r["cpu_seconds_mean"]) for r in csv.DictReader(handle) if r.get("cpu_seconds_mean")]
        cpu = f"{statistics.fmean(values):.1f} | " if values else "- | "
    lines = ["| cells | seeds | trainings | recorded training hours (sum over shard processes, wall clock) | seconds per training | "
             + ("CPU seconds per training (mean) | " if cpu_column else "")
             + "made at commit | uncommitted changes |", "|---|---|---|---|---|---|---|" + ("---|" if cpu_column else "")]
    lines.append(f"| {cells} | {seeds} | {trainings} | {seconds / 3600:.1f} | "
                 f"{seconds / max(1, trainings):.1f} | {cpu}{str(git.get('commit', '-'))[:10]} | "
                 f"{'yes' if git.get('dirty') else 'no'} |")
    return "\n".join(lines)


def random_policy(path: Path) -> str:
    """The exact random policy of the table's seed means (``test_accuracy_mean``): one uniform draw and
    the best of 5 and 10 (Yu et al. 2020, Eq. 1; ``metrics/random_baseline.py``)."""
    import csv

    from lightning_nas.metrics.random_baseline import RandomPolicy

    with path.open(newline="") as handle:
        policy = RandomPolicy.from_table([float(r["test_accuracy_mean"]) for r in csv.DictReader(handle)])
    lines = ["| draws n | mean of the best | sd | expected regret |", "|---|---|---|---|"]
    lines += [f"| {n} | {policy.mean(n):.2f} | {policy.sd(n):.2f} | {policy.expected_regret(n):.2f} |" for n in (1, 5, 10)]
    return "\n".join(lines)


#: other tabulations of shipped tables (``<stem>.<commit>.csv`` with their sidecars): earlier versions, kept so
#: that records scored against them can be re-scored (``results/rescore.py``), and fresh ones waiting to be installed
PREVIOUS_TABLES = Path(__file__).resolve().parents[2] / "results" / "previous_tables"
NEW_TABLES = Path(__file__).resolve().parents[2] / "results" / "tabulations"


def retest(path: Path) -> str:
    """Test-retest agreement of the table with each earlier tabulation of the same protocol
    (``PREVIOUS_TABLES``): two independent tabulations should agree about as well as the table's own
    split-half reliability predicts for two seed means of this many seeds (Spearman-Brown); a lower
    agreement means the protocol changed between them."""
    import json

    from scipy import stats

    from lightning_nas.tabulate.noise import noise_ceiling

    seeds, values = _columns(path, "test_accuracy")
    means = values.mean(axis=0)
    keys = _keys(path)
    # two independent means of len(seeds) seeds each should correlate as the table's seed-to-seed
    # Spearman stepped up to that many seeds (Spearman-Brown), the reliability of one mean
    predicted = noise_ceiling(path, seeds, ["test_accuracy"])["test_accuracy"]["all"]["spearman_brown_mean_of_seeds"]
    lines = ["| other tabulation (commit) | uncommitted changes | Spearman of the seed means | "
             "expected from one table's seed-to-seed agreement | Kendall tau | mean absolute difference | "
             "top-quartile agreement | best cell here: its rank there | best cell there: its rank here |",
             "|---|---|---|---|---|---|---|---|---|"]
    others = [p for folder in (PREVIOUS_TABLES, NEW_TABLES) for p in sorted(folder.glob(f"{path.stem}.*.csv"))
              if len(p.suffixes) == 2 and p.read_bytes() != path.read_bytes()]
    for previous in others:
        _, old_values = _columns(previous, "test_accuracy")
        old_keys = _keys(previous)
        order = {k: i for i, k in enumerate(old_keys)}
        if sorted(order) != sorted(keys):
            raise ReportError(f"{previous} holds other architectures than {path}")
        old = old_values.mean(axis=0)[[order[k] for k in keys]]
        side = json.loads(previous.with_suffix(".json").read_text())
        git = side.get("git") or {}
        quartile = len(means) // 4
        top_here, top_there = set(np.argsort(-means)[:quartile]), set(np.argsort(-old)[:quartile])
        rank_there = 1 + int(np.sum(old > old[int(np.argmax(means))]))
        rank_here = 1 + int(np.sum(means > means[int(np.argmax(old))]))
        lines.append(f"| {str(git.get('commit', '-'))[:10]} | {'yes' if git.get('dirty') else 'no'} | "
                     f"{stats.spearmanr(means, old).statistic:.3f} | {predicted:.3f} | "
                     f"{stats.kendalltau(means, old).statistic:.3f} | {float(np.mean(np.abs(means - old))):.2f} | "
                     f"{len(top_here & top_there) / quartile:.3f} | {rank_there} | {rank_here} |")
    if len(lines) == 2:
        raise ReportError(f"no other tabulation of {path.name} in {PREVIOUS_TABLES} or {NEW_TABLES}")
    return "\n".join(lines)


def _keys(path: Path) -> list[str]:
    import csv

    with path.open(newline="") as handle:
        return [r["ArchitectureString"] for r in csv.DictReader(handle)]


TABLE_STATISTICS: dict[str, Callable[[Path], str]] = {"reliability": reliability, "spread": spread,
                                                      "operations": operations, "subspaces": subspaces, "cost": cost,
                                                      "random_policy": random_policy, "retest": retest}


def table_block(table_file: str, statistic: str) -> str:
    """The text of a ``TABLE.csv/STATISTIC`` block."""
    from lightning_nas.benchmarks.tabulated import resolve_table

    if statistic not in TABLE_STATISTICS:
        raise ReportError(f"generated block {table_file}/{statistic}: no statistic {statistic!r} "
                          f"(statistics of a table: {', '.join(TABLE_STATISTICS)})")
    path = Path(resolve_table(table_file))
    if not path.is_file():
        raise ReportError(f"generated block {table_file}/{statistic}: no shipped table {table_file}")
    return TABLE_STATISTICS[statistic](path)
