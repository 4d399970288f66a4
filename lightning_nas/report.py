"""Aggregate an experiment's trials into tables and plots: ``python -m lightning_nas.report EXPERIMENT_DIR``.

Reads every finished trial (a run directory with ``trial.json`` saying ``finished``, or, for run
directories made without the runner, a ``selection.json``) and writes to ``EXPERIMENT_DIR/report``:

- ``trials.csv``: one row per trial with its factor values and final numbers;
- ``summary.csv`` / ``summary.md``: per strategy and factor value, mean ± sample std (ddof=1) over
  seeds of the selected architecture's ground truth, sparse Kendall tau, Kendall tau, super-net
  accuracy (mean over the ranking set at the last ranking epoch), best rank and p(beat random),
  and Welch's t-test of each group against a baseline group, as Table 1 of "Evaluating the Search
  Phase of NAS" (Yu et al., ICLR 2020) compares each algorithm with the random policy;
- PNG plots: super-net score vs ground truth (coloured by rank change), Kendall / sparse Kendall
  tau over epochs, test regret over epochs (from ``decoding.csv``), and the influence of each
  factor on the final performance (Figure 10 of "How to Train Your Super-Net");
- the same plots as ``wandb.Image`` when the runs logged to W&B (``WANDB_MODE=offline`` works).

The baseline of the t-test is the random-policy group sharing most factor values when the
experiment has one (a strategy whose name contains "random"), else ``--baseline`` (a group label,
e.g. "SPOS bn_mode=batch"), else the first group. Only csv, numpy, scipy and matplotlib are used.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

METRICS = {  # key -> (table heading, decimals)
    "ground_truth": ("ground truth", 2),
    "sparse_kendall_tau": ("sparse Kendall tau", 3),
    "kendall_tau": ("Kendall tau", 3),
    "supernet_accuracy": ("super-net accuracy", 2),
    "rank": ("best rank", 1),
    "p_beat_random": ("p(beat random)", 3),
    "selected_supernet_accuracy": ("selected arch. super-net val acc", 2),
}
TESTED = ("ground_truth", "sparse_kendall_tau", "supernet_accuracy", "selected_supernet_accuracy")  # Welch t-tests
NAN = float("nan")


class ReportError(ValueError):
    """Nothing to report, or a bad option; the message names it."""


# ---------------------------------------------------------------------------------------------- statistics
def summarize(values: Sequence[float]) -> tuple[int, float, float]:
    """(n, mean, sample standard deviation) of the finite values; std is NaN for fewer than 2."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    if len(v) == 0:
        return 0, NAN, NAN
    return len(v), float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else NAN


def welch(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Welch's unequal-variance t-test (Welch 1947), as Yu et al. use against random search: (t, p)."""
    from scipy import stats

    x = [v for v in a if v is not None and math.isfinite(v)]
    y = [v for v in b if v is not None and math.isfinite(v)]
    if len(x) < 2 or len(y) < 2:
        return NAN, NAN
    result = stats.ttest_ind(x, y, equal_var=False)
    return float(result.statistic), float(result.pvalue)


def fmt(value: float, decimals: int) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{decimals}f}"


def mean_std(values: Sequence[float], decimals: int) -> str:
    n, mean, std = summarize(values)
    if n == 0:
        return "-"
    return fmt(mean, decimals) + (f" ± {fmt(std, decimals)}" if n > 1 else " (n=1)")


# ---------------------------------------------------------------------------------------------- reading runs
def _float(text: Any) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return NAN


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@dataclass
class Run:
    """One run directory's numbers, as the report needs them."""

    path: Path
    name: str
    seed: Optional[int]
    strategy: str
    factors: dict[str, str]
    status: str
    loggers: list[str] = field(default_factory=list)
    wandb_project: str = "lightning_nas"
    final: dict[str, float] = field(default_factory=dict)
    ranking_history: dict[str, dict[int, float]] = field(default_factory=dict)  # metric -> epoch -> value
    ranking_table: list[tuple[float, float]] = field(default_factory=list)  # (score, truth), last ranking epoch
    regret: dict[int, float] = field(default_factory=dict)  # epoch -> mean test regret (decoding.csv)


def load_run(path: Path) -> Run:
    import yaml

    trial = json.loads((path / "trial.json").read_text()) if (path / "trial.json").is_file() else {}
    config = yaml.safe_load((path / "config.yaml").read_text()) if (path / "config.yaml").is_file() else {}
    config = config or {}
    model = config.get("model") or {}
    strategy = str(model.get("class_path", "?")).rsplit(".", 1)[-1] if isinstance(model, dict) else "?"
    selection = json.loads((path / "selection.json").read_text()) if (path / "selection.json").is_file() else {}
    status = trial.get("status") or ("finished" if selection else "unfinished")
    seed = trial.get("seed", config.get("seed_everything"))
    run = Run(path, trial.get("name", path.name), seed, strategy, {k: str(v) for k, v in trial.get("factors", {}).items()},
              status, list(config.get("loggers") or []), str(config.get("wandb_project") or "lightning_nas"))

    history: dict[str, dict[int, float]] = {}
    for row in _read_csv(path / "metrics.csv"):
        for key, text in row.items():
            if key and key.startswith("ranking/") and text not in ("", None) and row.get("epoch"):
                history.setdefault(key.split("/", 1)[1], {})[int(float(row["epoch"]))] = float(text)
    tables = sorted((path / "ranking").glob("epoch_*.csv"))
    if tables:
        rows = _read_csv(tables[-1])
        run.ranking_table = [(_float(r.get("supernet_accuracy")), _float(r.get("ground_truth"))) for r in rows]
        epoch = int(tables[-1].stem.split("_")[-1])
        _fill_from_table(history, epoch, run.ranking_table, (config.get("ranking") or {}).get("sparse_threshold", 0.1))
    run.ranking_history = history

    by_epoch: dict[int, list[float]] = {}
    for row in _read_csv(path / "decoding.csv"):  # callbacks/decoding.py writes test_regret
        regret = _float(row.get("test_regret", row.get("regret")))
        if row.get("epoch") not in (None, "") and math.isfinite(regret):
            by_epoch.setdefault(int(float(row["epoch"])), []).append(regret)
    run.regret = {e: float(np.mean(v)) for e, v in sorted(by_epoch.items())}

    last = {key: values[max(values)] for key, values in history.items() if values}
    run.final = {"ground_truth": _float(selection.get("ground_truth")),
                 "sparse_kendall_tau": last.get("sparse_kendall_tau", NAN),
                 "kendall_tau": last.get("kendall_tau", NAN),
                 "supernet_accuracy": last.get("supernet_accuracy", NAN),
                 "rank": _float(selection.get("rank")),
                 "p_beat_random": _float(selection.get("p_beat_random")),
                 "selected_supernet_accuracy": _float(selection.get("supernet_val_accuracy"))}
    return run


def _fill_from_table(history: dict[str, dict[int, float]], epoch: int, table: list[tuple[float, float]],
                     threshold: float) -> None:
    """Runs that logged no ranking metrics (another logger) still have the ranking CSV."""
    from lightning_nas.metrics import kendall_tau, sparse_kendall_tau

    scores = [s for s, _ in table]
    truth = [t for _, t in table]
    if scores and epoch not in history.get("supernet_accuracy", {}):
        history.setdefault("supernet_accuracy", {})[epoch] = float(np.mean(scores))
    if len(table) > 1 and all(math.isfinite(t) for t in truth) and epoch not in history.get("kendall_tau", {}):
        history.setdefault("kendall_tau", {})[epoch] = kendall_tau(truth, scores)
        history.setdefault("sparse_kendall_tau", {})[epoch] = sparse_kendall_tau(truth, scores, threshold)


def find_runs(experiment_dir: Path) -> list[Run]:
    dirs = sorted(p for p in experiment_dir.iterdir() if p.is_dir() and (p / "config.yaml").is_file())
    if (experiment_dir / "config.yaml").is_file():
        dirs.insert(0, experiment_dir)
    return [load_run(d) for d in dirs]


# ---------------------------------------------------------------------------------------------- grouping
@dataclass
class Group:
    strategy: str
    factors: tuple[tuple[str, str], ...]
    runs: list[Run] = field(default_factory=list)

    @property
    def label(self) -> str:
        # a factor that chooses the strategy (model.class_path) is already said by the strategy's name
        return " ".join([self.strategy, *(f"{k}={v}" for k, v in self.factors
                                          if v.rsplit(".", 1)[-1] != self.strategy)])

    def values(self, metric: str) -> list[float]:
        return [r.final.get(metric, NAN) for r in self.runs]


def factor_order(experiment_dir: Path, runs: list[Run]) -> dict[str, list[str]]:
    """Factor -> values in the experiment's order (the first value is the factor's baseline)."""
    order: dict[str, list[str]] = {}
    record = experiment_dir / "experiment.json"
    if record.is_file():
        for factor in json.loads(record.read_text()).get("grid", []):
            order[factor["label"]] = [str(v) for v in factor["values"]]
    for run in runs:
        for key, value in run.factors.items():
            values = order.setdefault(key, [])
            if value not in values:
                values.append(value)
    return order


def group_runs(runs: list[Run], order: dict[str, list[str]]) -> list[Group]:
    strategies = list(dict.fromkeys(r.strategy for r in runs))
    groups: dict[tuple, Group] = {}
    for run in runs:
        factors = tuple((k, run.factors.get(k, "-")) for k in order)
        groups.setdefault((run.strategy, factors), Group(run.strategy, factors)).runs.append(run)

    def position(group: Group) -> tuple:
        return ("random" in group.strategy.lower(), strategies.index(group.strategy),  # random last, as in Table 1
                *(order[k].index(v) if v in order[k] else len(order[k]) for k, v in group.factors))

    return sorted(groups.values(), key=position)


def baselines(groups: list[Group], chosen: Optional[str]) -> dict[str, Optional[Group]]:
    """Group label -> the group it is tested against (None for the baseline itself)."""
    if chosen is not None:
        match = [g for g in groups if g.label == chosen] or [g for g in groups if chosen in g.label]
        if len(match) != 1:
            raise ReportError(f"--baseline {chosen!r} matches {len(match)} groups; groups: "
                              + "; ".join(g.label for g in groups))
        return {g.label: None if g is match[0] else match[0] for g in groups}
    randoms = [g for g in groups if "random" in g.strategy.lower()]
    result: dict[str, Optional[Group]] = {}
    for g in groups:
        if randoms:
            # the random group sharing most factor values (a strategy factor itself never matches)
            closest = max(randoms, key=lambda r: sum(a == b for a, b in zip(r.factors, g.factors)))
            result[g.label] = None if g in randoms else closest
        else:
            result[g.label] = None if g is groups[0] else groups[0]
    return result


# ---------------------------------------------------------------------------------------------- tables
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


# ---------------------------------------------------------------------------------------------- plots
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


# ---------------------------------------------------------------------------------------------- W&B
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


# ---------------------------------------------------------------------------------------------- main
def build_report(experiment_dir: str | Path, out: str | Path | None = None, baseline: Optional[str] = None,
                 use_wandb: Optional[bool] = None) -> Path:
    """Write the tables and plots; returns the path of ``summary.md``."""
    experiment_dir = Path(experiment_dir)
    if not experiment_dir.is_dir():
        raise ReportError(f"EXPERIMENT_DIR {experiment_dir}: not a directory")
    every = find_runs(experiment_dir)
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
    if not any(math.isfinite(r.final["ground_truth"]) for r in runs):
        notes.append("No ground truth (the recipe had no `benchmark:`): ground truth, Kendall tau, best rank and "
                     "p(beat random) are unavailable; the factor plot uses the selected architecture's super-net "
                     "validation accuracy instead.")
    plots: dict[str, str] = {}
    if plot_score_vs_truth(groups, out / "supernet_vs_truth.png"):
        plots["Super-net score vs ground truth (last ranking epoch)"] = "supernet_vs_truth.png"
    if plot_ranking(groups, out / "ranking_over_epochs.png"):
        plots["Ranking quality over epochs (mean ± std over seeds)"] = "ranking_over_epochs.png"
    if plot_regret(groups, out / "regret_over_epochs.png"):
        plots["Test regret over epochs (mean ± std over seeds)"] = "regret_over_epochs.png"
    else:
        notes.append("No decoding.csv in the runs: no regret-over-epochs plot.")
    final = plot_factors(groups, order, out / "factor_influence.png")
    if final:
        plots[f"Influence of each factor on {METRICS[final][0]} and ranking quality"] = "factor_influence.png"
    summary = out / "summary.md"
    from lightning_nas.io import atomic_write_text

    atomic_write_text(summary, markdown(experiment_dir, groups, base, runs,
                                        [r for r in every if r.status != "finished"], plots, notes))
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
    args = parser.parse_args(argv)
    try:
        summary = build_report(args.experiment_dir, args.out, args.baseline,
                               {"auto": None, "yes": True, "no": False}[args.wandb])
    except ReportError as error:
        print(f"report: error: {error}", file=sys.stderr)
        return 2
    print(summary.read_text())
    print(f"[lightning_nas] report written to {summary.parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
