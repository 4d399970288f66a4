"""Tuned one-shot NAS against its defaults and the discrete optimisers (NAS-Bench-1Shot1, Zela et al.
2020, Sec. 5.4 and App. F: does BOHB-tuned DARTS find better cells than DARTS at its defaults, and
than black-box search given the same simulated time?).

Every method is read through one black-box problem (the folder's ``tables``; ``results/anytime.py``):
the tuned repetitions' incumbents as ``python -m lightning_nas.tuning join`` recorded them, the
untuned runs' answers (the group ``join --default`` named, e.g. ``strategies/DARTS (1st order)``)
looked up in the problem's test column, and each discrete optimiser's incumbent at the tuned method's
mean simulated time and at its own end. So all test regrets are of one test column against one best
value. Differences are tuned minus other (negative: tuning found better cells), with the 95 %
percentile bootstrap interval of the difference of two independent means (``scipy.stats.bootstrap``,
each sample resampled on its own; Efron & Tibshirani 1993, ch. 13) and Welch's t-test p.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from lightning_nas.report.common import ReportError
from lightning_nas.report.statistics import bootstrap_mean_ci, fmt_p, welch


def difference_ci(a: list[float], b: list[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """mean(a) - mean(b) and its percentile bootstrap interval (independent samples); nan where a
    sample has fewer than two values."""
    from scipy import stats

    mean = float(np.mean(a) - np.mean(b)) if a and b else math.nan
    if len(a) < 2 or len(b) < 2:
        return mean, math.nan, math.nan
    result = stats.bootstrap((np.asarray(a, float), np.asarray(b, float)),
                             lambda x, y, axis: np.mean(x, axis=axis) - np.mean(y, axis=axis),
                             confidence_level=confidence, n_resamples=4000, method="percentile",
                             vectorized=True, rng=np.random.default_rng(0))
    return mean, float(result.confidence_interval.low), float(result.confidence_interval.high)


def default_regrets(records: Any, problem: Any, default: dict[str, str]) -> list[float]:
    """The untuned runs' answers (``default``: ``{results, group}``), as the problem's test regret."""
    from lightning_nas.results.tables import Records

    folder = Path(records.folder).parent / default["results"]
    trials = Records.load(folder).groups().get(default["group"])
    if not trials:
        raise ReportError(f"results/{records.name}: the default runs {default['results']}/{default['group']} "
                          f"are not in {folder}")
    regrets = []
    for trial in trials:
        arch = problem.space.parse(trial["answer"]["architecture"])
        regrets.append(problem.test_regret(problem.test.query(problem.space.key(arch))))
    return regrets


def tuned_table(records: Any) -> str:
    from lightning_nas.blackbox.trajectory import value_at
    from lightning_nas.results.anytime import label, problem, trajectories

    runs = trajectories(records) or {}
    methods = records.experiment.get("methods") or {}
    tuned = [m for m in runs if (methods.get(m) or {}).get("kind") == "tuning"]
    if not tuned:
        return f"_results/{records.name} has no tuned method (python -m lightning_nas.tuning join)._"
    built = problem(records)
    lines = ["| method | repetitions | t_sim (s) | test regret, mean [95 % bootstrap CI] | tuned - method "
             "[95 % bootstrap CI] | Welch p |", "|---|---|---|---|---|---|"]
    for method in tuned:
        finals = [run[-1]["test_regret"] for run in runs[method].values()]
        t_tuned = float(np.mean([run[-1]["t_sim"] for run in runs[method].values()]))
        rows: list[tuple[str, str, list[float]]] = [(f"{method} (tuned)", f"{t_tuned:.0f}", finals)]
        default = (methods.get(method) or {}).get("default")
        if default:
            rows.append((f"{default['group']} at its defaults ({default['results']})", "-",
                         default_regrets(records, built, default)))
        for other, reps in runs.items():
            if other in tuned:
                continue
            at_time = [value_at(run, t_tuned) for run in reps.values()]
            if all(math.isfinite(v) for v in at_time):
                rows.append((f"{label(other, records)} at the tuned t_sim", f"{t_tuned:.0f}", at_time))
            rows.append((f"{label(other, records)} at its end",
                         f"{np.mean([run[-1]['t_sim'] for run in reps.values()]):.0f}",
                         [run[-1]["test_regret"] for run in reps.values()]))
        for index, (name, seconds, values) in enumerate(rows):
            mean, low, high = bootstrap_mean_ci(values)
            cell = f"{mean:.3f} [{low:.3f}, {high:.3f}]"
            if index == 0:
                lines.append(f"| {name} | {len(values)} | {seconds} | {cell} | - | - |")
                continue
            diff, d_low, d_high = difference_ci(finals, values)
            interval = f"{diff:+.3f} [{d_low:+.3f}, {d_high:+.3f}]" if math.isfinite(d_low) else f"{diff:+.3f}"
            p = welch(finals, values)[1]
            lines.append(f"| {name} | {len(values)} | {seconds} | {cell} | {interval} | {fmt_p(p)} |")
    info = records.experiment.get("problem") or {}
    best = info.get("best_test")
    lines += ["", "Test regret of each method's answer in the problem's test column"
              + (f" (against its best value, {float(best):.3f})" if best is not None else "")
              + "; a default run's t_sim is not recorded."]
    for method in tuned:
        overhead = [v for v in (methods.get(method) or {}).get("overhead_per_evaluation_seconds") or []
                    if v is not None]
        if overhead:
            lines.append(f"{method}'s own time (searcher and scheduler methods, timed in the driver): "
                         f"{1000 * float(np.mean(overhead)):.1f} ms per evaluation, mean over {len(overhead)} "
                         "repetitions.")
    return "\n".join(lines)
