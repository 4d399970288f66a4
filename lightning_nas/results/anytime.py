"""The anytime comparison of NAS-Bench-1Shot1 (Zela et al. 2020, Sec. 5.4, Fig. 5): the incumbent's
test regret against simulated wall-clock, from ``results/<name>/trajectories.jsonl``
(``lightning_nas.blackbox.trajectory``), for black-box optimisers and one-shot runs alike.

- ``anytime_figure``: log-log, one line per method (its mean over repetitions, the incumbent of each
  repetition carried forward in time) with the 95 % percentile-bootstrap band of the mean
  (``report.statistics.bootstrap_mean_ci``), drawn from the time by which every repetition has
  answered; a regret of 0 (the table's best cell) is drawn on the figure's floor, since a log axis has
  no 0. Where the problem's table is complete, the exact expectation of random search (selection
  by validation, ``blackbox.expectation``) is a dashed reference, placed at n x the table's mean
  training time for n queries.
- ``anytime_table``: per method the final regret (mean and 95 % bootstrap CI over repetitions), the
  share of repetitions that ended on the table's best cell, queries and simulated time; and the
  exact random-search references at the same number of queries.
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any, Optional

import numpy as np

from lightning_nas.report.common import ReportError
from lightning_nas.report.statistics import bootstrap_mean_ci
from lightning_nas.results.tables import Records

DISPLAY = {"random_search": "Random search", "regularized_evolution": "Regularised evolution",
           "reinforce": "REINFORCE", "bohb": "BOHB"}
#: regret drawn at least this large on the log axis (accuracy points; 0 is drawn here)
FLOOR = 0.01


def label(method: str, records: Optional[Records] = None) -> str:
    """The method's display name: its optimiser's, with regularised evolution's P and S (two settings
    of one optimiser are two methods)."""
    info = ((records.experiment.get("methods") or {}).get(method) or {}) if records is not None else {}
    optimizer = info.get("optimizer", method)
    name = DISPLAY.get(optimizer, method)
    settings = info.get("settings") or {}
    if optimizer == "regularized_evolution" and "population" in settings:
        name += f" (P={settings['population']}, S={settings['sample_size']})"
    return name


def trajectories(records: Records) -> Optional[dict[str, dict[int, list[dict[str, Any]]]]]:
    """method -> repetition -> records; None for a folder without trajectories."""
    from lightning_nas.blackbox.trajectory import read, runs

    folder = getattr(records, "folder", None)
    if folder is None or not (Path(folder) / "trajectories.jsonl").is_file():
        return None
    try:
        return runs(read(Path(folder) / "trajectories.jsonl"))
    except ValueError as error:
        raise ReportError(str(error)) from None


def problem(records: Records) -> Optional[Any]:
    """The black-box problem the records were made on, rebuilt from the shipped tables (None when the
    records name none); a table whose bytes changed since is an error, as for ``Records.policy``."""
    spec = records.experiment.get("tables")
    if not spec:
        return None
    import importlib

    from lightning_nas.blackbox.problem import Tables

    module, _, name = spec["class_path"].rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    tables: Tables = cls(**spec["init_args"])
    recorded = {s["file"]: s["sha256"] for s in records.experiment.get("sources", [])}
    for path in tables.sources():
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if recorded.get(path.name) not in (None, digest):
            raise ReportError(f"results/{records.name}: the trajectories were made with another {path.name} "
                              f"(sha256 {recorded[path.name][:12]}, shipped {digest[:12]}): rerun them")
    return tables.build()


def random_search_reference(records: Records, queries: list[int]) -> Optional[dict[str, Any]]:
    """Exact expected test regret of random search with n queries (by validation, and by test), and the
    table's mean training seconds; None without a complete table."""
    built = problem(records)
    if built is None or not records.experiment.get("complete"):
        return None
    from lightning_nas.blackbox.expectation import random_search_regret
    from lightning_nas.metrics.random_baseline import RandomPolicy

    keys = list(built.test.table())
    valid = [built.valid.query(k) for k in keys]
    test = [built.test.query(k) for k in keys]
    regret = [built.test_regret(t) for t in test]
    seconds = [built.seconds if isinstance(built.seconds, float) else built.seconds.query(k) for k in keys]
    policy = RandomPolicy.from_table(test, built.higher_is_better)
    best_valid = max(valid) if built.higher_is_better else min(valid)
    at_best = [r for v, r in zip(valid, regret, strict=True) if v == best_valid]
    return {"by_valid": {n: random_search_regret(valid, regret, n, built.higher_is_better) for n in queries},
            "by_test": {n: policy.expected_regret(n) for n in queries},
            "best_valid": best_valid, "best_valid_regret": float(np.mean(at_best)),
            "mean_seconds": float(np.mean(seconds)), "size": len(keys)}


def _grid(runs: dict[str, dict[int, list[dict]]], points: int = 200) -> np.ndarray:
    first = min(r[0]["t_sim"] for reps in runs.values() for r in reps.values() if r)
    last = max(r[-1]["t_sim"] for reps in runs.values() for r in reps.values() if r)
    return np.geomspace(max(first, 1e-9), max(last, first * 1.0001), points)


def curve(reps: dict[int, list[dict]], grid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and bootstrap band of the incumbent's regret over repetitions at each grid time (nan until
    every repetition has answered, and after the last repetition ended: a method is not drawn for
    time it did not spend, e.g. a tuning run that stopped long before the discrete optimisers)."""
    from lightning_nas.blackbox.trajectory import value_at

    end = max(run[-1]["t_sim"] for run in reps.values() if run)
    stats = []
    for t in grid:
        values = [value_at(run, float(t)) for run in reps.values()]
        finite = all(math.isfinite(v) for v in values) and t <= end * (1 + 1e-9)
        stats.append(bootstrap_mean_ci(values) if finite else (math.nan,) * 3)
    mean, low, high = (np.array(s, dtype=float) for s in zip(*stats, strict=True))
    return mean, low, high


def anytime_figure(records: Records, path: Path) -> Optional[Path]:
    """One panel per method (shared log-log axes, the figures' convention: no overlapping bands): its
    mean and band in colour, the other methods' means in thin grey, and in every panel the exact
    random-search expectation (dashed) and the validation-best cell's regret (dotted)."""
    runs = trajectories(records)
    if not runs:
        return None
    from matplotlib.ticker import FormatStrFormatter, NullFormatter

    from lightning_nas.report.plots import _pyplot, colour
    from lightning_nas.results.figures import RANDOM_STYLE, _save

    plt = _pyplot()
    count = len(runs)
    columns = 1 if count == 1 else 2
    rows = math.ceil(count / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.7 * columns, 2.7 * rows + 0.9), sharex=True, sharey=True,
                             squeeze=False, layout="constrained")
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    grid = _grid(runs)
    curves = {method: curve(reps, grid) for method, reps in runs.items()}
    drawn = [float(v) for c in curves.values() for v in np.concatenate([c[1], c[2]]) if math.isfinite(v)]
    most = max([int(m.get("max_queries") or 0) for m in (records.experiment.get("methods") or {}).values()] + [1])
    queries = sorted({int(round(q)) for q in np.geomspace(1, most, 60)})
    reference = random_search_reference(records, queries)
    if reference is not None:
        drawn += [reference["by_valid"][n] for n in queries] + [reference["best_valid_regret"]]
    handles = []
    for index, (ax, (method, reps)) in enumerate(zip(axes.flat, runs.items(), strict=False)):
        for other, (mean, _, _) in curves.items():
            if other != method:
                ax.plot(grid, np.maximum(mean, FLOOR), color="#c8c8c8", linewidth=0.7, zorder=1)
        mean, low, high = curves[method]
        tint = colour(index)
        ax.fill_between(grid, np.maximum(low, FLOOR), np.maximum(high, FLOOR), color=tint, alpha=0.25, linewidth=0,
                        zorder=2)
        ax.plot(grid, np.maximum(mean, FLOOR), color=tint, linewidth=1.6, zorder=3)
        if reference is not None:
            ax.plot([n * reference["mean_seconds"] for n in queries],
                    [max(reference["by_valid"][n], FLOOR) for n in queries], **RANDOM_STYLE, zorder=2)
            ax.axhline(max(reference["best_valid_regret"], FLOOR), color="#777777", linestyle=":", linewidth=1.1,
                       zorder=0)
        ax.set_title(f"{label(method, records)}, {len(reps)} repetitions", fontsize=9)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.grid(True, which="major", color="#e5e5e5", linewidth=0.6)
        if index + columns >= count:  # the bottom panel of its column
            ax.tick_params(labelbottom=True)
            ax.set_xlabel("simulated wall-clock t_sim (s)")
    low_limit, high_limit = max(FLOOR, min(drawn)) * 0.8, max(drawn) * 1.2
    ax0 = axes.flat[0]
    ax0.set_ylim(low_limit, high_limit)
    ticks = [t for t in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 1.5, 2, 3, 5, 10, 20, 50) if low_limit <= t <= high_limit]
    ax0.set_yticks(ticks)
    ax0.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax0.yaxis.set_minor_formatter(NullFormatter())
    higher = (records.experiment.get("problem") or {}).get("higher_is_better", True)
    fig.supylabel("test regret of the incumbent" + (" (accuracy points)" if higher else ""), fontsize=9)
    ax0.xaxis.set_major_formatter(FormatStrFormatter("%g"))
    handles = [plt.Line2D([], [], color=colour(0), linewidth=1.6, label="mean over repetitions, 95 % bootstrap band"),
               plt.Line2D([], [], color="#c8c8c8", linewidth=0.7, label="the other methods' means")]
    if reference is not None:
        handles += [plt.Line2D([], [], **RANDOM_STYLE, label="random search, exact expectation (n queries drawn at "
                                                             "n x mean training time)"),
                    plt.Line2D([], [], color="#777777", linestyle=":", linewidth=1.1,
                               label="the validation-best cell (where a perfect search by validation ends)")]
    fig.legend(handles=handles, loc="outside lower center", ncol=2, frameon=False, fontsize=7.5)
    fig.suptitle("Anytime test regret of the incumbent (chosen by validation); t_sim sums the training time "
                 "of every queried cell", fontsize=9.5)
    return _save(fig, path)


def anytime_table(records: Records) -> str:
    runs = trajectories(records)
    if not runs:
        return f"_results/{records.name} holds no trajectories.jsonl._"
    lines = ["| method | repetitions | queries | t_sim (s) | final test regret, mean [95 % bootstrap CI] | "
             "ended on the validation-best cell |", "|---|---|---|---|---|---|"]
    counts = []
    built = problem(records) if records.experiment.get("complete") else None
    best_valid = (max if built.higher_is_better else min)(built.valid.table().values()) if built else None
    for method, reps in runs.items():
        finals = [run[-1]["test_regret"] for run in reps.values()]
        mean, low, high = bootstrap_mean_ci(finals)
        info = (records.experiment.get("methods") or {}).get(method) or {}
        queries = info.get("max_queries")
        if queries is not None:
            counts.append(int(queries))
        seconds = float(np.mean([run[-1]["t_sim"] for run in reps.values()]))
        best = "-" if best_valid is None else \
            f"{sum(1 for run in reps.values() if round(run[-1]['valid'], 6) == round(best_valid, 6))}/{len(reps)}"  # as recorded
        lines.append(f"| {label(method, records)} | {len(reps)} | {queries if queries is not None else '-'} | "
                     f"{seconds:.0f} | {mean:.3f} [{low:.3f}, {high:.3f}] | {best} |")
    reference = random_search_reference(records, sorted(set(counts)))
    if reference is not None:
        for n in sorted(set(counts)):
            lines.append(f"| random search, exact expectation (by validation) | - | {n} | "
                         f"{n * reference['mean_seconds']:.0f} | {reference['by_valid'][n]:.3f} | - |")
            lines.append(f"| best of {n} uniform draws by *test* (a bound no validation-driven search is "
                         f"promised) | - | {n} | - | {reference['by_test'][n]:.3f} | - |")
        lines.append(f"| the validation-best cell (where a perfect search by validation ends) | - | - | - | "
                     f"{reference['best_valid_regret']:.3f} | - |")
    info = records.experiment.get("problem") or {}
    notes = [f"Regret against the best test value of the table ({_num(info.get('best_test'))}); "
             f"{info.get('size', '?')} cells; t_sim: mean over repetitions of the summed training time "
             "of every query, repeated cells included."]
    return "\n".join(lines + [""] + notes)


def _num(value: Any) -> str:
    try:
        return f"{float(value):.3f}"
    except (TypeError, ValueError):
        return "?"
