"""Super-net training factors, one at a time, paired by seed.

A factor experiment ("How to Train Your Super-Net", Yu et al., Sec. 4) runs one recipe at several
levels of one factor (``--grid ranking.bn_mode,selection.bn_mode=batch,running``) over the same seeds.
At one seed every level ranks the same cells and selects among the same candidates, so the levels are
compared by paired differences (level - baseline, the baseline being the grid's first level): their
mean, the paired Student t 95 % interval, the paired t and Wilcoxon signed-rank p. The verdict is what
the interval allows: "above 0" or "below 0" where it excludes 0, else "inconclusive".

``factor_effects`` computes them (``tables.factor_table`` prints them); ``factor_figure`` draws every
shipped factor experiment (``results/findings_*``) in the layout of the paper's Figure 10: one bar per
factor level, grouped by the categories of its Table 1 (sampling, hyper-parameters, low fidelity,
implementation), for the searched model's ground truth and for sparse Kendall tau side by side.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

#: the metrics a factor is judged by: the searched model's ground truth and the final ranking's agreement
METRICS = {"ground_truth": "answer's ground truth", "sparse_kendall_tau": "sparse Kendall tau",
           "kendall_tau": "Kendall tau",
           # Yu et al.'s baseline-v2 (Sec. 4.5): within each sub-space of fixed widths, where runs rank by sub-space
           "subspace_sparse_kendall_tau": "sparse Kendall tau within sub-spaces"}

#: Table 1 of "How to Train Your Super-Net": the category of each factor, by the last part of its recipe key
CATEGORIES = {
    "sampling": "Sampling", "strategy": "Sampling", "fair_over": "Sampling",
    "bn_mode": "Hyper-parameters", "lr": "Hyper-parameters", "max_epochs": "Hyper-parameters",
    "weight_decay": "Hyper-parameters",
    "network": "Low fidelity", "C": "Low fidelity", "N": "Low fidelity", "layers": "Low fidelity",
    "batch_size": "Low fidelity", "train_portion": "Low fidelity",
    "wsbn": "Implementation", "path_dropout": "Implementation", "global_dropout": "Implementation",
    "channels": "Implementation", "ofa_kernel": "Implementation", "ops_on": "Implementation",
    "fairnas": "Sampling",
}
CATEGORY_ORDER = ["Sampling", "Hyper-parameters", "Low fidelity", "Implementation", "Other"]


@dataclass(frozen=True)
class Effect:
    """One level of a factor against the baseline level, on one metric, paired by seed."""

    experiment: str
    factor: str          # the factor's key, as the records name it ("bn_mode")
    baseline: str        # "bn_mode=batch"
    level: str           # "bn_mode=running"
    metric: str          # a key of METRICS
    baseline_mean: float
    level_mean: float
    n: int               # pairs (seeds both levels finished)
    mean: float          # mean of level - baseline
    low: float           # paired t 95 % interval (nan with fewer than 2 pairs or no spread)
    high: float
    p_t: float
    p_wilcoxon: float

    @property
    def verdict(self) -> str:
        if math.isfinite(self.low) and self.low > 0:
            return "above 0"
        if math.isfinite(self.high) and self.high < 0:
            return "below 0"
        return "inconclusive (contains 0)"

    @property
    def category(self) -> str:
        """By the factor's key; for a grid over recipe files (``--grid model=recipes/findings/...``, one
        file per level) by the level's file name, which names its factor (``path_dropout``,
        ``no_weight_decay``, ``ops_on_node``)."""
        key = self.factor.rsplit(".", 1)[-1]
        if key in CATEGORIES:
            return CATEGORIES[key]
        stem = self.level.partition("=")[2]
        for name in sorted(CATEGORIES, key=len, reverse=True):
            if stem == name or stem.startswith(name + "_") or stem.endswith("_" + name):
                return CATEGORIES[name]
        return "Other"


def level_label(factors: dict[str, Any]) -> str:
    """``bn_mode=running``; a recipe file as the value reads as its stem (``model=path_dropout``)."""
    from lightning_nas.experiments.design import short_value

    return ", ".join(f"{k}={short_value(str(v))}" for k, v in sorted(factors.items()))


def _metric_value(trial: dict, metric: str) -> Optional[float]:
    from lightning_nas.results.tables import own_score_agreement

    if metric == "ground_truth":
        return (trial.get("answer") or {}).get("ground_truth")
    if metric.startswith("subspace_"):
        return own_score_agreement(trial, within_subspaces=True).get(metric.removeprefix("subspace_"))
    return own_score_agreement(trial).get(metric)


def paired_difference(a: list[float], b: list[float]) -> dict[str, float]:
    """mean(b - a), its 95 % paired t interval, paired t p and Wilcoxon p (nan where undefined)."""
    from scipy import stats

    d = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    out = {"n": len(d), "mean": float(d.mean()) if len(d) else math.nan, "low": math.nan, "high": math.nan,
           "p_t": math.nan, "p_wilcoxon": math.nan}
    if len(d) >= 2 and np.ptp(d) > 0:
        result = stats.ttest_rel(b, a)
        interval = result.confidence_interval(0.95)
        out.update(low=float(interval.low), high=float(interval.high), p_t=float(result.pvalue))
    if len(d) >= 2 and np.any(d != 0):
        out["p_wilcoxon"] = float(stats.wilcoxon(d).pvalue)
    return out


def _grid_position(records, factors: dict[str, Any]) -> tuple:
    """Where a level's values stand in the experiment's grid (``experiment.json``): the baseline is the
    grid's first value, as the command wrote it, not the first trial met (trials are stored by name)."""
    position = []
    for factor in (records.experiment.get("grid") or []):
        values = [str(v) for v in factor.get("values", [])]
        value = str(factors.get(factor.get("label")))
        position.append(values.index(value) if value in values else len(values))
    return tuple(position)


def factor_effects(records) -> list[Effect]:
    """Every level after the grid's first against the first, on every metric, paired by seed."""
    by_level: dict[str, dict[int, dict]] = {}
    position: dict[str, tuple] = {}
    keys: list[str] = []
    for trial in records.trials:
        factors = trial.get("factors") or {}
        keys += [k for k in factors if k not in keys]
        by_level.setdefault(level_label(factors), {})[int(trial["seed"])] = trial
        position[level_label(factors)] = _grid_position(records, factors)
    levels = sorted(by_level, key=position.__getitem__)  # stable: levels outside the grid keep their order
    if len(levels) < 2:
        return []
    base, factor = levels[0], "+".join(keys)
    effects = []
    for level in levels[1:]:
        seeds = sorted(set(by_level[base]) & set(by_level[level]))
        for metric in METRICS:
            pairs = [(_metric_value(by_level[base][s], metric), _metric_value(by_level[level][s], metric))
                     for s in seeds]
            pairs = [(float(a), float(b)) for a, b in pairs if a is not None and b is not None]
            if not pairs:
                continue
            a, b = [x for x, _ in pairs], [y for _, y in pairs]
            diff = paired_difference(a, b)
            effects.append(Effect(records.name, factor, base, level, metric, float(np.mean(a)), float(np.mean(b)),
                                  **diff))
    return effects


def _short_level(effect: Effect) -> str:
    """"network={C: 4, N: 1, affine: false} - network={C: 8, ...}" -> "network C: 8 → 4": only the
    parts of a mapping-valued level that differ from the baseline."""
    import yaml

    def parse(label: str) -> tuple[str, Any]:
        key, _, value = label.partition("=")
        try:
            return key, yaml.safe_load(value)
        except yaml.YAMLError:
            return key, value

    key, base = parse(effect.baseline)
    _, level = parse(effect.level)
    if key == "model" and isinstance(base, str) and isinstance(level, str):  # recipe files named by their factor
        return f"{level.replace('_', ' ')} (vs {base.replace('_', ' ')})"
    if isinstance(base, dict) and isinstance(level, dict):
        changed = [k for k in level if base.get(k) != level.get(k)]
        return f"{key} " + ", ".join(f"{k}: {base.get(k)} → {level.get(k)}" for k in changed)
    return f"{key}: {base} → {level}"


def level_labels(experiments: list, ordered: list[dict]) -> tuple[list[str], list[str]]:
    """The figure's row labels and categories. A level trained for other epochs than its baseline says
    so (low fidelity with the epochs prolonged by the compute saved, ``budget_match``; Yu et al. Sec.
    4.4, Table 2; or the epochs factor itself), and a level measured on another ground truth than most
    of the figure's (NB101 beside NB201) names its table."""
    epochs = {(r.name, level_label(t.get("factors") or {})): ((t.get("ranking") or {}).get("final") or {}).get("epoch")
              for r in experiments for t in r.trials}
    tables = {r.name: str((r.experiment.get("benchmark") or {}).get("table", "")) for r in experiments}
    usual = max(set(tables.values()), key=list(tables.values()).count) if tables else ""
    labels, categories = [], []
    for row in ordered:
        effect = next(iter(row.values()))
        level, base = epochs.get((effect.experiment, effect.level)), epochs.get((effect.experiment, effect.baseline))
        longer = f", {level} epochs vs {base}" if level and base and level != base and effect.factor != "max_epochs" else ""
        table = tables.get(effect.experiment, usual)
        where = f", on {table.removesuffix('.csv')}" if table != usual else ""
        labels.append(f"{_short_level(effect)} ({effect.n} seeds{longer}{where})")
        categories.append(effect.category)
    return labels, categories


def factor_figure(experiments: list, path: Path) -> Optional[Path]:
    """Figure 10 of "How to Train Your Super-Net" at this scale: per factor level, the paired mean
    difference (bar) and its 95 % t interval (whisker) in the searched model's ground truth and in
    sparse Kendall tau, rows grouped by the paper's factor categories."""
    rows = {}
    for records in experiments:
        for effect in factor_effects(records):
            if effect.metric in ("ground_truth", "sparse_kendall_tau"):
                rows.setdefault((effect.experiment, effect.level), {})[effect.metric] = effect
    if not rows:
        return None
    from lightning_nas.report.plots import _pyplot
    from lightning_nas.results.figures import _save

    ordered = sorted(rows.values(), key=lambda r: (CATEGORY_ORDER.index(next(iter(r.values())).category),
                                                  next(iter(r.values())).experiment))
    labels, categories = level_labels(experiments, ordered)
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 0.55 * len(ordered) + 1.6), sharey=True, layout="constrained")
    tints = {c: plt.get_cmap("tab10")(i) for i, c in enumerate(CATEGORY_ORDER)}
    y = np.arange(len(ordered))[::-1]
    for ax, metric, xlabel in ((axes[0], "ground_truth", "difference in the searched model's\nground truth "
                                                          "(accuracy points)"),
                               (axes[1], "sparse_kendall_tau", "difference in sparse Kendall tau")):
        for yi, row, category in zip(y, ordered, categories, strict=True):
            effect = row.get(metric)
            if effect is None:
                continue
            ax.barh(yi, effect.mean, height=0.6, color=tints[category], alpha=0.8)
            if math.isfinite(effect.low):
                ax.errorbar(effect.mean, yi, xerr=[[effect.mean - effect.low], [effect.high - effect.mean]],
                            fmt="none", ecolor="black", capsize=3, linewidth=1)
        ax.axvline(0, color="#555555", linewidth=0.8)
        ax.set_axisbelow(True)  # the grid behind the bars
        ax.set_xlabel(xlabel)
        ax.grid(axis="x", color="#eeeeee", zorder=0)
    axes[0].set_yticks(y)
    axes[0].set_yticklabels(labels, fontsize=8)
    present = [c for c in CATEGORY_ORDER if c in categories]
    handles = [plt.Rectangle((0, 0), 1, 1, color=tints[c], alpha=0.8, label=c) for c in present]
    handles.append(plt.Line2D([], [], color="black", marker="|", linestyle="-", label="paired 95 % t interval"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False, fontsize=8)
    fig.suptitle("Influence of super-net training factors (level - baseline, paired by seed)", fontsize=10)
    return _save(fig, path)
