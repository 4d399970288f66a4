"""The report's PNG figures (matplotlib, Agg backend)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import numpy as np

from lightning_nas.report.common import METRICS, NAN
from lightning_nas.report.runs import Group, Run
from lightning_nas.report.statistics import summarize


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _grid(count: int) -> tuple[int, int]:
    cols = min(count, 3)
    return math.ceil(count / cols), cols


def plot_score_vs_truth(groups: list[Group], path: Path) -> bool:
    """Super-net score against ground truth at the last ranking epoch; colour = how many places the
    super-net moves an architecture (rank by ground truth - rank by score; > 0: over-rated)."""
    from scipy.stats import rankdata

    shown = [g for g in groups if any(r.ranking_table and all(math.isfinite(t) for _, t in r.ranking_table)
                                      for r in g.runs)]
    if not shown:
        return False
    plt = _pyplot()
    rows, cols = _grid(len(shown))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols + 1, 3.6 * rows), squeeze=False, layout="constrained")
    limit = max(len(r.ranking_table) for g in shown for r in g.runs)
    for ax, g in zip(axes.flat, shown):
        for run in g.runs:
            table = [(s, t) for s, t in run.ranking_table if math.isfinite(t) and math.isfinite(s)]
            if len(table) < 2:
                continue
            scores, truth = np.array(table).T
            change = rankdata(-truth) - rankdata(-scores)
            points = ax.scatter(truth, scores, c=change, cmap="coolwarm", vmin=-limit, vmax=limit, s=14,
                                edgecolors="none")
        ax.set_title(g.label, fontsize=9)
        ax.set_xlabel("ground truth")
        ax.set_ylabel("super-net accuracy")
    for ax in list(axes.flat)[len(shown):]:
        ax.axis("off")
    fig.colorbar(points, ax=axes, label="rank change (truth rank - super-net rank)")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _band(ax, groups: list[Group], series) -> bool:
    """Mean ± std over seeds per epoch, one line per group; False when no group has data."""
    drawn = False
    for g in groups:
        curves = [series(r) for r in g.runs]
        epochs = sorted({e for c in curves for e in c})
        if not epochs:
            continue
        stats = [summarize([c.get(e, NAN) for c in curves]) for e in epochs]
        mean = np.array([s[1] for s in stats])
        std = np.nan_to_num(np.array([s[2] for s in stats]))
        line, = ax.plot(epochs, mean, marker="o", ms=3, label=g.label)
        ax.fill_between(epochs, mean - std, mean + std, color=line.get_color(), alpha=0.2)
        drawn = True
    return drawn


def plot_ranking(groups: list[Group], path: Path) -> bool:
    metrics = [m for m in ("kendall_tau", "sparse_kendall_tau", "supernet_accuracy")
               if any(r.ranking_history.get(m) for g in groups for r in g.runs)]
    if not metrics:
        return False
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.8 * len(metrics), 3.8), squeeze=False, layout="constrained")
    for ax, metric in zip(axes[0], metrics):
        _band(ax, groups, lambda run, m=metric: run.ranking_history.get(m, {}))
        ax.set_xlabel("epoch")
        ax.set_title(METRICS[metric][0])
    axes[0][0].legend(fontsize=7)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_regret(groups: list[Group], path: Path) -> bool:
    if not any(r.regret for g in groups for r in g.runs):
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.8), layout="constrained")
    _band(ax, groups, lambda run: run.regret)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test regret of the decoded architecture")
    ax.legend(fontsize=7)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def factor_effects(groups: list[Group], order: dict[str, list[str]], metric: str) -> list[tuple[str, float, float]]:
    """Per strategy, factor and non-baseline value: (label, difference of means vs the factor's first
    value, its standard error), over all runs with that value (marginal over the other factors)."""
    effects = []
    runs_by_strategy: dict[str, list[Run]] = {}
    for g in groups:
        runs_by_strategy.setdefault(g.strategy, []).extend(g.runs)
    for strategy, runs in runs_by_strategy.items():
        for factor, values in order.items():
            def sample(value: str) -> list[float]:
                return [r.final.get(metric, NAN) for r in runs if r.factors.get(factor) == value]

            n0, m0, s0 = summarize(sample(values[0]))
            for value in values[1:]:
                n1, m1, s1 = summarize(sample(value))
                if n0 and n1:
                    se = math.sqrt((s1 ** 2 / n1 if n1 > 1 else 0) + (s0 ** 2 / n0 if n0 > 1 else 0))
                    prefix = f"{strategy}: " if len(runs_by_strategy) > 1 else ""
                    effects.append((f"{prefix}{factor} {value} vs {values[0]}", m1 - m0, se))
    return effects


def plot_factors(groups: list[Group], order: dict[str, list[str]], path: Path) -> Optional[str]:
    """Figure 10 of "How to Train Your Super-Net": each factor's effect on the final result and on the
    ranking (sparse Kendall tau; the mean super-net accuracy without ground truth)."""
    final = "ground_truth" if any(math.isfinite(v) for g in groups for v in g.values("ground_truth")) \
        else "selected_supernet_accuracy"
    ranking = "sparse_kendall_tau" if any(math.isfinite(v) for g in groups for v in g.values("sparse_kendall_tau")) \
        else "supernet_accuracy"
    panels = [(m, factor_effects(groups, order, m)) for m in (final, ranking)]
    panels = [(m, e) for m, e in panels if e and any(math.isfinite(d) for _, d, _ in e)]
    if not panels:
        return None
    plt = _pyplot()
    height = 1.8 + 0.45 * max(len(e) for _, e in panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), height), squeeze=False, layout="constrained")
    for ax, (metric, effects) in zip(axes[0], panels):
        labels, diffs, errors = zip(*effects)
        y = np.arange(len(labels))
        colours = ["tab:green" if d >= 0 else "tab:red" for d in diffs]
        ax.barh(y, diffs, xerr=errors, height=0.6, color=colours, alpha=0.8, capsize=3)
        ax.set_ylim(-0.8, len(labels) - 0.2)
        ax.set_yticks(y, labels, fontsize=8)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_xlabel(f"difference in {METRICS[metric][0]}")
    fig.suptitle("influence of each factor (vs its first value; ± standard error)", fontsize=9)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return final
