"""The published figures, drawn from shipped records only (``render.py`` calls ``draw_all``).

Conventions (issue 19's review): one small panel per strategy with shared axes instead of overlapping
bands; bands are 95 % percentile-bootstrap intervals of the mean over seeds (they stay within the
data's range: a regret band never goes below 0); thin grey lines are the single seeds; the exact
random policy is a dashed reference line named in the legend, never text over the data; markers
sit at the number of epochs trained (``ranking/epoch_009.csv`` is drawn at 10); axis labels say
"sparse Kendall tau" where it is that, with units; names come from ``names.py``. PNG metadata is
fixed so that a redraw with the same matplotlib gives the same bytes.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from lightning_nas.report.plots import _pyplot, colour
from lightning_nas.report.statistics import bootstrap_mean_ci
from lightning_nas.results.tables import Records

PNG_METADATA = {"Software": None}
RANDOM_STYLE = {"color": "#555555", "linestyle": "--", "linewidth": 1.1}
METRIC_LABELS = {"kendall_tau": "Kendall tau", "sparse_kendall_tau": "sparse Kendall tau (authors' code)",
                 "spearman": "Spearman rho"}


def _seeds(n: int) -> str:
    return f"{n} seed" + ("" if n == 1 else "s")


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150, bbox_inches="tight", metadata=PNG_METADATA)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def _grid(plt, count: int, width: float = 2.6, height: float = 2.1):
    columns = min(4, count)
    rows = math.ceil(count / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(width * columns, height * rows + 0.9), sharex=True,
                             sharey=True, squeeze=False, layout="constrained")
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    return fig, axes


def _label_axes(fig, axes, count: int, xlabel: str, ylabel: str) -> None:
    """One y label for the figure (per-row labels collide when they are long), and the x label and
    tick labels on every panel that has no visible panel below it."""
    rows, columns = axes.shape
    for index, ax in enumerate(axes.flat[:count]):
        if index + columns >= count:  # the bottom panel of its column
            ax.set_xlabel(xlabel)
            ax.tick_params(labelbottom=True)
    fig.supylabel(ylabel, fontsize=10)


def _curves(trials: list[dict], series: Callable[[dict], dict[int, float]]) -> tuple[list[int], list[dict]]:
    curves = [series(t) for t in trials]
    return sorted({e for c in curves for e in c}), curves


def _panel(ax, epochs: list[int], curves: list[dict], tint: str) -> None:
    """Single seeds in grey, the mean with its bootstrap band in the group's colour."""
    for c in curves:
        xs = [e for e in epochs if e in c and math.isfinite(c[e])]
        ax.plot(xs, [c[e] for e in xs], color="#bbbbbb", linewidth=0.6, zorder=1)
    stats = [bootstrap_mean_ci([c.get(e, math.nan) for c in curves]) for e in epochs]
    mean = np.array([s[0] for s in stats])
    ax.fill_between(epochs, [s[1] for s in stats], [s[2] for s in stats], color=tint, alpha=0.25, linewidth=0,
                    zorder=2)
    ax.plot(epochs, mean, color=tint, marker="o", markersize=3, linewidth=1.5, zorder=3)


def _legend(plt, tint: str) -> list:
    return [plt.Line2D([], [], color="#bbbbbb", linewidth=0.6, label="single seed"),
            plt.Line2D([], [], color=tint, marker="o", markersize=3, label="mean over seeds, 95 % bootstrap CI band")]


def ranking_figure(records: Records, metric: str, path: Path) -> Optional[Path]:
    """``metric`` of the shared-weight ranking over epochs, a panel per group, each run ranked by the
    score it used (``ranking.score``: super-net accuracy or loss)."""
    def key(trial: dict) -> str:
        return "by_loss" if trial.get("ranking", {}).get("score") == "loss" else "by_accuracy"

    groups = {k: v for k, v in records.groups().items()
              if any((e.get(key(t)) or {}).get(metric) is not None
                     for t in v for e in t.get("ranking", {}).get("epochs", []))}
    if not groups:
        return None
    plt = _pyplot()
    fig, axes = _grid(plt, len(groups))

    def series(trial: dict) -> dict[int, float]:
        return {e["epoch"]: float(e[key(trial)][metric]) for e in trial["ranking"]["epochs"]
                if (e.get(key(trial)) or {}).get(metric) is not None}

    scores = sorted({key(t)[3:] for v in groups.values() for t in v})
    for index, (ax, (label, trials)) in enumerate(zip(axes.flat, groups.items(), strict=False)):  # _grid hides its spare cells
        epochs, curves = _curves(trials, series)
        _panel(ax, epochs, curves, colour(index))
        ax.axhline(0.0, color="#999999", linewidth=0.6, zorder=0)
        ax.set_title(f"{label}, {_seeds(len(trials))}", fontsize=9)
        ax.set_xticks(epochs[1::2] if len(epochs) > 6 else epochs)
    _label_axes(fig, axes, len(groups), "epochs trained", METRIC_LABELS[metric])
    title = f"{METRIC_LABELS[metric]} of the shared-weight ranking (by super-net {' or '.join(scores)})"
    if any((t.get("ranking") or {}).get("epochs_scored_against") for v in groups.values() for t in v):
        # re-scored records (results/rescore.py): only the final epoch's scores were recorded
        title += "\nepochs before the last: scored against the previous version of the ground-truth table"
    fig.suptitle(title, fontsize=10)
    fig.legend(handles=_legend(plt, colour(0)), loc="outside lower center", ncol=2, frameon=False)
    return _save(fig, path)


def regret_figure(records: Records, path: Path) -> Optional[Path]:
    """Test regret of the decoded architecture over epochs (DARTS family, ENAS), a panel per group,
    with the exact random policy's expected regret of one draw."""
    groups = {k: v for k, v in records.groups().items() if any(t.get("decoding") for t in v)}
    if not groups:
        return None
    policy = records.policy()
    plt = _pyplot()
    fig, axes = _grid(plt, len(groups))

    def series(trial: dict) -> dict[int, float]:
        return {d["epoch"]: float(d["regret"]) for d in trial.get("decoding", []) if d.get("regret") is not None}

    for index, (ax, (label, trials)) in enumerate(zip(axes.flat, groups.items(), strict=False)):  # _grid hides its spare cells
        epochs, curves = _curves(trials, series)
        _panel(ax, epochs, curves, colour(index))
        if policy is not None:
            ax.axhline(policy.expected_regret(1), **RANDOM_STYLE, zorder=0)
        ax.set_title(f"{label}, {_seeds(len(trials))}", fontsize=9)
    top = max([policy.expected_regret(1) if policy is not None else 0.0]
              + [d["regret"] for v in groups.values() for t in v for d in t["decoding"] if d.get("regret") is not None])
    axes.flat[0].set_ylim(0, 1.08 * top if top > 0 else 1.0)
    unit = " (accuracy points)" if (records.experiment.get("benchmark") or {}).get("higher_is_better", True) else ""
    _label_axes(fig, axes, len(groups), "epochs trained", "test regret" + unit)
    handles = _legend(plt, colour(0))
    if policy is not None:
        handles.append(plt.Line2D([], [], **RANDOM_STYLE, label=f"random policy, exact expected regret "
                                                                  f"({policy.expected_regret(1):.2f})"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False)
    title = "Test regret of the decoded architecture"
    unresolved = sum(1 for v in groups.values() for t in v for d in t["decoding"] if d.get("unresolved"))
    if unresolved:  # re-scored records (results/rescore.py): rows whose cell the previous table could not name
        rows = sum(len(t["decoding"]) for v in groups.values() for t in v)
        title += (f"\n{unresolved} of {rows} intermediate rows left out: their cell is ambiguous in the previous "
                  "version of the table")
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def answers_figure(records: Records, path: Path) -> Optional[Path]:
    """Each strategy's answers (one dot per seed, mean and 95 % bootstrap CI) against the exact random
    policy's mean and 5-95 % range of one draw."""
    groups = records.groups()
    if not groups:
        return None
    policy = records.policy()
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1.0 * len(groups) + 2.0, 3.2))
    rng = np.random.default_rng(0)
    higher = (records.experiment.get("benchmark") or {}).get("higher_is_better", True)
    for index, trials in enumerate(groups.values()):
        values = [t["answer"]["ground_truth"] for t in trials if t["answer"].get("ground_truth") is not None]
        jitter = rng.uniform(-0.15, 0.15, len(values))
        ax.scatter(index + jitter, values, s=12, color=colour(index), alpha=0.7, zorder=3, linewidths=0)
        mean, low, high = bootstrap_mean_ci(values)
        if math.isfinite(mean):
            ax.errorbar(index + 0.3, mean, yerr=[[mean - low], [high - mean]], fmt="D", color="black",
                        markersize=4, capsize=3, zorder=4)
    handles = [plt.Line2D([], [], color="black", marker="D", markersize=4, linestyle="none",
                          label="mean (95 % bootstrap CI)")]
    if policy is not None:
        sign = 1 if higher else -1
        low, high = sorted(sign * policy.quantile(q) for q in (0.05, 0.95))
        ax.axhspan(low, high, color="#dddddd", zorder=0)
        ax.axhline(sign * policy.mean(), **RANDOM_STYLE, zorder=1)
        handles += [plt.Line2D([], [], **RANDOM_STYLE, label=f"random draw, exact mean ({sign * policy.mean():.2f})"),
                    plt.Rectangle((0, 0), 1, 1, color="#dddddd", label="random draw, 5-95 % range")]
    ax.set_xlim(-0.6, len(groups) - 0.4 + 0.3)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(list(groups), rotation=20, ha="right")
    info = records.experiment.get("benchmark") or {}
    metric = str(info.get("metric", ""))
    unit = " (test accuracy, %)" if "accuracy" in metric else \
        f" ({metric.replace('_', ' ')}, lower is better)" if info.get("higher_is_better") is False else ""
    ax.set_ylabel("ground truth of the answer" + unit)
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return _save(fig, path)


def _anytime(records: Records, path: Path) -> Optional[Path]:
    """Test regret against simulated wall-clock from trajectories.jsonl (``results/anytime.py``)."""
    from lightning_nas.results.anytime import anytime_figure

    return anytime_figure(records, path)


FIGURES: dict[str, Callable[[Records, Path], Any]] = {
    "answers": answers_figure,
    "kendall_over_epochs": lambda r, p: ranking_figure(r, "kendall_tau", p),
    "sparse_kendall_over_epochs": lambda r, p: ranking_figure(r, "sparse_kendall_tau", p),
    "regret_over_epochs": regret_figure,
    "anytime": lambda r, p: _anytime(r, p),
}


def draw_all(records: Records, folder: Path) -> list[Path]:
    """Every figure that has data, as ``FOLDER/<experiment>_<figure>.png``."""
    drawn = []
    for name, draw in FIGURES.items():
        path = draw(records, Path(folder) / f"{records.name}_{name}.png")
        if path is not None:
            drawn.append(path)
    return drawn
