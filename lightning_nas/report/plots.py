"""The report's figures (matplotlib, Agg backend): PNG for viewing, PDF and SVG for papers.

Conventions: axes shared within a figure; ranges robust to a few outliers (limits from the 2nd to
98th percentiles of the pooled data, widened by a margin; points outside are drawn on the edge as
open triangles and counted in the panel); axis labels with units; the Okabe-Ito colour-blind-safe
palette (Okabe & Ito 2008) for groups and a diverging purple-orange map for rank change; 9-10 pt
text at the saved size; identical panels (sparse Kendall tau equal to Kendall tau) drawn once.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import numpy as np

from lightning_nas.report.common import METRICS, NAN
from lightning_nas.report.runs import Group, Run
from lightning_nas.report.statistics import bootstrap_mean_ci, summarize

OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
LINESTYLES = ["-", "--", "-.", ":"]
FORMATS = ("png", "pdf", "svg")
UNITS = {"kendall_tau": "", "sparse_kendall_tau": "", "supernet_accuracy": " (%)", "ground_truth": " (%)",
         "selected_supernet_accuracy": " (%)"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8,
                         "xtick.labelsize": 8, "ytick.labelsize": 8, "pdf.fonttype": 42, "svg.fonttype": "path",
                         "axes.spines.top": False, "axes.spines.right": False})
    return plt


def _save(fig, path: Path) -> None:
    """PNG at ``path`` and the same figure as PDF and SVG beside it."""
    for suffix in FORMATS:
        fig.savefig(path.with_suffix(f".{suffix}"), dpi=200 if suffix == "png" else None, bbox_inches="tight")


def _integer_epochs(ax) -> None:
    """Epochs are whole numbers: integer ticks, and half an epoch of room around a short run (a
    single epoch would otherwise get an axis of fractions around it)."""
    import math

    from matplotlib.ticker import MaxNLocator

    low, high = ax.dataLim.intervalx
    if math.isfinite(low) and math.isfinite(high) and high - low < 4:
        ax.set_xlim(math.floor(low) - 0.5, math.ceil(high) + 0.5)
        ax.set_xticks(range(math.floor(low), math.ceil(high) + 1))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def colour(index: int) -> str:
    return OKABE_ITO[index % len(OKABE_ITO)]


def robust_limits(values, fence: float = 3.0, margin: float = 0.06) -> tuple[float, float]:
    """Axis limits that a few outliers cannot stretch: the data range cut at Tukey's far-out fences
    (quartiles ∓ ``fence`` x IQR), plus a margin. Points beyond are drawn on the edge by the caller."""
    v = np.asarray([x for x in values if math.isfinite(x)], dtype=float)
    if len(v) == 0:
        return 0.0, 1.0
    q1, q3 = np.percentile(v, [25, 75])
    iqr = q3 - q1
    lo, hi = max(v.min(), q1 - fence * iqr), min(v.max(), q3 + fence * iqr)
    span = hi - lo if hi > lo else max(abs(hi), 1.0) * 0.1
    return float(lo - margin * span), float(hi + margin * span)


def _group_tau(group: Group) -> tuple[str, int]:
    """'tau = m ± s' of the last ranking epoch over the group's seeds."""
    from lightning_nas.metrics import kendall_tau

    taus = []
    for run in group.runs:
        table = [(s, t) for s, t in run.ranking_table if math.isfinite(t) and math.isfinite(s)]
        if len(table) > 1:
            scores, truth = np.array(table).T
            taus.append(kendall_tau(truth, scores))
    n, mean, std = summarize(taus)
    if n == 0:
        return "", 0
    return f"Kendall τ = {mean:.2f}" + (f" ± {std:.2f}" if n > 1 else ""), n


def plot_score_vs_truth(groups: list[Group], path: Path) -> bool:
    """Super-net score against ground truth at the last ranking epoch, one panel per group with shared
    axes; colour = rank by ground truth - rank by super-net score (> 0: over-rated by the super-net)."""
    from scipy.stats import rankdata

    shown = [g for g in groups if any(r.ranking_table and all(math.isfinite(t) for _, t in r.ranking_table)
                                      for r in g.runs)]
    if not shown:
        return False
    plt = _pyplot()
    points = [(s, t) for g in shown for r in g.runs for s, t in r.ranking_table
              if math.isfinite(s) and math.isfinite(t)]
    xlim = robust_limits([t for _, t in points])
    ylim = robust_limits([s for s, _ in points])
    cols = min(3, math.ceil(math.sqrt(len(shown))))
    rows = math.ceil(len(shown) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols + 1.0, 2.8 * rows + 0.4), squeeze=False, sharex=True,
                             sharey=True, layout="constrained")
    limit = max(len(r.ranking_table) for g in shown for r in g.runs)
    image = None
    unit = shown[0].runs[0].unit if shown[0].runs else "%"
    for ax, g in zip(axes.flat, shown, strict=False):  # the grid's spare cells are turned off below
        clipped = 0
        for run in g.runs:
            table = [(s, t) for s, t in run.ranking_table if math.isfinite(t) and math.isfinite(s)]
            if len(table) < 2:
                continue
            scores, truth = np.array(table).T
            change = rankdata(-truth) - rankdata(-scores)
            inside = (truth >= xlim[0]) & (truth <= xlim[1]) & (scores >= ylim[0]) & (scores <= ylim[1])
            image = ax.scatter(truth[inside], scores[inside], c=change[inside], cmap="PuOr_r", vmin=-limit,
                               vmax=limit, s=12, edgecolors="none", alpha=0.85)
            for marker, outside in (("<", truth < xlim[0]), (">", truth > xlim[1]),
                                    ("v", (scores < ylim[0]) & (truth >= xlim[0]) & (truth <= xlim[1])),
                                    ("^", (scores > ylim[1]) & (truth >= xlim[0]) & (truth <= xlim[1]))):
                if outside.any():
                    clipped += int(outside.sum())
                    ax.scatter(np.clip(truth[outside], *xlim), np.clip(scores[outside], *ylim), marker=marker,
                               facecolors="none", edgecolors="0.35", s=16, linewidths=0.7, clip_on=False)
        text, n = _group_tau(g)
        ax.set_title(g.label + (f"\n{text} ({n} seed{'s' if n != 1 else ''})" if text else ""))
        if clipped:
            ax.text(0.98, 0.02, f"{clipped} point{'s' if clipped != 1 else ''} beyond the axis range\n"
                    "drawn on the edge (open triangles)", transform=ax.transAxes, va="bottom", ha="right",
                    fontsize=7, color="0.3", bbox=dict(boxstyle="round,pad=0.2", facecolor="white", edgecolor="none",
                                                       alpha=0.85))
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
    for index, ax in enumerate(axes.flat):
        if index < len(shown) and index + cols >= len(shown):  # the lowest panel of its column
            ax.tick_params(labelbottom=True)
            ax.set_xlabel(f"ground truth: stand-alone accuracy ({unit})" if unit else "ground truth")
    for ax in axes[:, 0]:
        ax.set_ylabel("super-net accuracy (%)")
    for ax in list(axes.flat)[len(shown):]:
        ax.axis("off")
    if image is not None:
        fig.colorbar(image, ax=axes, label="rank change\n(truth rank − super-net rank)", shrink=0.6)
    _save(fig, path)
    plt.close(fig)
    return True


def _epoch_stats(group: Group, series) -> tuple[list[int], np.ndarray, np.ndarray, np.ndarray]:
    """Epochs trained, and per epoch the mean over the group's seeds and its 95 % percentile-bootstrap
    interval, of ``series(run)`` (0-based epoch -> value). Runs log ``current_epoch`` (0-based: the
    ranking after the 10th epoch is epoch 9, ``ranking/epoch_009.csv``); figures show epochs trained,
    so it is drawn at 10."""
    curves = [series(r) for r in group.runs]
    epochs = sorted({e for c in curves for e in c})
    stats = [bootstrap_mean_ci([c.get(e, NAN) for c in curves]) for e in epochs]
    return ([e + 1 for e in epochs], np.array([s[0] for s in stats]), np.array([s[1] for s in stats]),
            np.array([s[2] for s in stats]))


BAND = "mean over seeds, 95 % bootstrap CI"


def _band(ax, groups: list[Group], series, colours: Optional[list[str]] = None) -> list:
    """Mean over seeds per epoch with its bootstrap band (within the data's range, so a regret band
    never dips below 0), one line per group; returns the drawn lines."""
    lines = []
    for index, g in enumerate(groups):
        epochs, mean, low, high = _epoch_stats(g, series)
        if not epochs:
            continue
        tint = colours[index] if colours else colour(index)
        line, = ax.plot(epochs, mean, marker=MARKERS[index % len(MARKERS)], ms=3.5, lw=1.4, color=tint,
                        linestyle=LINESTYLES[index // len(OKABE_ITO) % len(LINESTYLES)], label=g.label)
        ax.fill_between(epochs, low, high, color=tint, alpha=0.18, linewidth=0)
        lines.append(line)
    return lines


def _same_series(groups: list[Group], a: str, b: str, tolerance: float = 5e-3) -> bool:
    """True when two ranking metrics agree everywhere (within ``tolerance``): one panel suffices."""
    pairs = [(r.ranking_history.get(a, {}), r.ranking_history.get(b, {})) for g in groups for r in g.runs]
    common = [(x[e], y[e]) for x, y in pairs for e in x if e in y]
    return bool(common) and all(abs(u - v) <= tolerance for u, v in common if math.isfinite(u) and math.isfinite(v))


def plot_ranking(groups: list[Group], path: Path) -> bool:
    metrics = [m for m in ("kendall_tau", "sparse_kendall_tau", "supernet_accuracy")
               if any(r.ranking_history.get(m) for g in groups for r in g.runs)]
    if not metrics:
        return False
    titles = {m: METRICS[m][0] for m in metrics}
    if "kendall_tau" in metrics and "sparse_kendall_tau" in metrics and _same_series(groups, "kendall_tau",
                                                                                     "sparse_kendall_tau"):
        metrics.remove("sparse_kendall_tau")
        titles["kendall_tau"] = "Kendall τ (= sparse Kendall τ within 0.005)"
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.4 * len(metrics), 2.9), squeeze=False, sharex=True,
                             layout="constrained")
    taus = [ax for ax, m in zip(axes[0], metrics, strict=True) if "kendall" in m]
    lines = []
    for ax, metric in zip(axes[0], metrics, strict=True):
        lines = _band(ax, groups, lambda run, m=metric: run.ranking_history.get(m, {})) or lines
        ax.set_xlabel("epochs trained")
        _integer_epochs(ax)
        ax.set_title(titles[metric])
        ax.set_ylabel(METRICS[metric][0] + UNITS.get(metric, ""))
    if len(taus) > 1:  # the tau panels share their y axis
        low = min(ax.get_ylim()[0] for ax in taus)
        high = max(ax.get_ylim()[1] for ax in taus)
        for ax in taus:
            ax.set_ylim(low, high)
    fig.legend(handles=lines, loc="outside lower center", ncol=min(3, max(1, len(lines))), frameon=False,
               title=BAND)
    _save(fig, path)
    plt.close(fig)
    return True


def plot_regret(groups: list[Group], path: Path, exact_regret: Optional[float] = None) -> bool:
    """Test regret of the decoded architecture over epochs: one panel per group (shared axes; a mean ±
    std band each would hide the others in one panel), with the random baseline's mean regret, when
    the experiment has one, as a dashed reference line in every panel."""
    shown = [g for g in groups if any(r.regret for r in g.runs)]
    if not shown:
        return False
    plt = _pyplot()
    reference = next((g for g in shown if "random" in g.strategy.lower()), None)
    panels = [g for g in shown if g is not reference] or shown
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.9 * cols + 0.4, 2.3 * rows + 0.5), squeeze=False, sharex=True,
                             sharey=True, layout="constrained")
    unit = panels[0].runs[0].unit if panels[0].runs else "%"
    baseline, baseline_label = None, ""
    if exact_regret is not None:  # a complete table: random search's expected regret, exactly
        baseline, baseline_label = exact_regret, f"random policy, exact expected regret ({exact_regret:.2f})"
    elif reference is not None:
        values = [v for r in reference.runs for v in r.regret.values()]
        baseline = float(np.mean(values)) if values else None
        baseline_label = f"{reference.label}: mean regret of its draws"
    reference_line = None
    for ax, g in zip(axes.flat, panels, strict=False):  # the grid's spare cells are turned off below
        _band(ax, [g], lambda run: run.regret, colours=[colour(groups.index(g))])
        if baseline is not None:
            reference_line = ax.axhline(baseline, color="0.25", linestyle="--", linewidth=1.0,
                                        label=baseline_label)
        ax.set_title(f"{g.label} ({len(g.runs)} seed{'s' if len(g.runs) != 1 else ''})")
        _integer_epochs(ax)
    # a regret is never negative; no robust cut: the early, large regrets are the point of the plot
    top = baseline or 0.0
    for g in panels:
        epochs, _, _, high = _epoch_stats(g, lambda run: run.regret)
        if epochs:
            top = max(top, float(np.nanmax(high)))
    axes.flat[0].set_ylim(0.0, 1.05 * top or 1.0)  # shared y: every band whole (all-zero regret: 0 to 1)
    for index, ax in enumerate(axes.flat):
        if index < len(panels) and index + cols >= len(panels):
            ax.tick_params(labelbottom=True)
            ax.set_xlabel("epochs trained")
    for ax in axes[:, 0]:
        ax.set_ylabel("test regret" + (" (accuracy points)" if unit == "%" else ""))
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    if reference_line is not None:
        fig.legend(handles=[reference_line], loc="outside lower center", frameon=False)
    fig.suptitle(f"decoded architecture: {BAND}", fontsize=10)
    _save(fig, path)
    plt.close(fig)
    return True


def factor_effects(groups: list[Group], order: dict[str, list[str]], metric: str,
                   detail: bool = False) -> list[tuple]:
    """Per strategy, factor and non-baseline value: (label, difference of means vs the factor's first
    value, its standard error), over all runs with that value (marginal over the other factors).

    With ``detail``: (label, difference, standard error, p, test, n) where runs that agree in seed and in
    every other factor are paired (paired t-test of the differences, "paired"), else Welch ("Welch")."""
    from lightning_nas.report.statistics import paired, welch

    effects = []
    runs_by_strategy: dict[str, list[Run]] = {}
    for g in groups:
        runs_by_strategy.setdefault(g.strategy, []).extend(g.runs)
    for strategy, runs in runs_by_strategy.items():
        for factor, values in order.items():
            first = _runs_with(runs, factor, values[0])
            n0, m0, s0 = summarize([r.final.get(metric, NAN) for r in first])
            for value in values[1:]:
                other = _runs_with(runs, factor, value)
                n1, m1, s1 = summarize([r.final.get(metric, NAN) for r in other])
                if not (n0 and n1):
                    continue
                se = math.sqrt((s1 ** 2 / n1 if n1 > 1 else 0) + (s0 ** 2 / n0 if n0 > 1 else 0))
                prefix = f"{strategy}: " if len(runs_by_strategy) > 1 else ""
                label = f"{prefix}{factor} {value} vs {values[0]}"
                if not detail:
                    effects.append((label, m1 - m0, se))
                    continue
                a = {_pairing_key(r, factor): r.final.get(metric, NAN) for r in other}
                b = {_pairing_key(r, factor): r.final.get(metric, NAN) for r in first}
                pair = paired(a, b)
                if pair.n >= 2 and pair.n == min(n0, n1):
                    se_pair = pair.sd_difference / math.sqrt(pair.n) if math.isfinite(pair.sd_difference) else NAN
                    effects.append((label, pair.mean_difference, se_pair, pair.p_t, "paired", pair.n))
                else:
                    _, p = welch([r.final.get(metric, NAN) for r in other], [r.final.get(metric, NAN) for r in first])
                    effects.append((label, m1 - m0, se, p, "Welch", min(n0, n1)))
    return effects


def _runs_with(runs: list[Run], factor: str, value: str) -> list[Run]:
    """The runs whose ``factor`` has ``value``."""
    return [r for r in runs if r.factors.get(factor) == value]


def _pairing_key(run: Run, factor: str) -> tuple:
    """What two runs that differ only in ``factor`` share: the seed and every other factor."""
    return (run.seed, *sorted((k, v) for k, v in run.factors.items() if k != factor))


def plot_factors(groups: list[Group], order: dict[str, list[str]], path: Path) -> Optional[str]:
    """Figure 10 of "How to Train Your Super-Net": each factor's effect on the final result and on the
    ranking (sparse Kendall tau; the mean super-net accuracy without ground truth), as a difference
    with its 95 % confidence interval. Effects without evidence (p >= 0.05) are open grey markers
    labelled "no evidence", so that they do not read as effects."""
    from scipy import stats

    final = "ground_truth" if any(math.isfinite(v) for g in groups for v in g.values("ground_truth")) \
        else "selected_supernet_accuracy"
    ranking = "sparse_kendall_tau" if any(math.isfinite(v) for g in groups for v in g.values("sparse_kendall_tau")) \
        else "supernet_accuracy"
    panels = [(m, factor_effects(groups, order, m, detail=True)) for m in (final, ranking)]
    panels = [(m, e) for m, e in panels if e and any(math.isfinite(d) for _, d, *_ in e)]
    if not panels:
        return None
    plt = _pyplot()
    count = max(len(e) for _, e in panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(3.9 * len(panels) + 1.6, 1.4 + 0.55 * count), squeeze=False,
                             sharey=True, layout="constrained")
    for ax, (metric, effects) in zip(axes[0], panels, strict=True):
        y = np.arange(len(effects))[::-1]
        for row, (_label, diff, se, p, test, n) in zip(y, effects, strict=True):
            half = stats.t.ppf(0.975, max(1, n - 1)) * se if math.isfinite(se) and n > 1 else NAN
            evidence = math.isfinite(p) and p < 0.05
            ax.errorbar(diff, row, xerr=half if math.isfinite(half) else None, fmt="o", ms=5, capsize=3,
                        color=colour(0) if evidence else "0.55", mfc=colour(0) if evidence else "white", lw=1.2)
            shown = ("p < 0.001" if p < 0.001 else f"p = {p:.3f}") if math.isfinite(p) else ""
            text = f"{shown} ({test}, n = {n})" if evidence else \
                (f"no evidence, {shown} ({test}, n = {n})" if shown else f"not testable (n = {n})")
            ax.annotate(text, (diff, row), xytext=(0, 6), textcoords="offset points", ha="center", va="bottom",
                        fontsize=7.5, color="0.1" if evidence else "0.4",
                        bbox=dict(boxstyle="round,pad=0.15", facecolor="white", edgecolor="none", alpha=0.85))
        ax.set_yticks(y, [e[0] for e in effects])
        ax.set_ylim(-0.7, len(effects) - 0.3)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_xlabel(f"difference in {METRICS[metric][0]}" + (" (points)" if UNITS.get(metric) else "")
                      + "\n(± 95 % CI)")
        ax.margins(x=0.25)
    fig.suptitle("Influence of each factor (vs its first value)")
    _save(fig, path)
    plt.close(fig)
    return final
