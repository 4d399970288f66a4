"""The table's noise ceiling: seed-to-seed rank agreement and the spread of its values."""
from __future__ import annotations

import csv
import itertools
import math
import statistics
import warnings
from pathlib import Path
from typing import Any, Optional, Sequence


def noise_ceiling(path: str | Path, seeds: Sequence[int], metrics: Sequence[str],
                  tie_threshold: float = 0.1) -> dict[str, Any]:
    """How reproducible is the table? Per metric:

    * seed-to-seed Kendall tau and Spearman rho, averaged over seed pairs: the rank agreement of
      two independent trainings, the ceiling for any proxy predicting one training;
    * Spearman-Brown ``S r / (1 + (S - 1) r)``: the expected reliability of the S-seed mean;
    * both again on the better half of the table (by mean), where a search actually decides;
    * the spread of the means: best, mean, worst, and how many architectures lie within
      ``tie_threshold`` of the best and what fraction of pairs lie within it of each other
      (the pairs sparse Kendall tau treats as ties).
    """
    from lightning_nas.metrics import kendall_tau, spearman_rho

    with Path(path).open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    summary: dict[str, Any] = {"architectures": len(rows), "seeds": len(seeds), "tie_threshold": tie_threshold}
    for metric in metrics:
        means = [float(r[f"{metric}_mean"]) for r in rows]
        per_seed = [[float(r[f"{metric}_seed{s}"]) for r in rows] for s in seeds]
        better_half = sorted(range(len(rows)), key=lambda i: means[i], reverse="accuracy" in metric)
        better_half = better_half[:max(2, len(rows) // 2)]
        entry: dict[str, Any] = {}
        for name, subset in (("all", list(range(len(rows)))), ("better_half", better_half)):
            if len(seeds) < 2 or len(subset) < 2:
                break
            kendalls, spearmans = [], []
            for a, b in itertools.combinations(range(len(seeds)), 2):
                x = [per_seed[a][i] for i in subset]
                y = [per_seed[b][i] for i in subset]
                with warnings.catch_warnings():  # a constant column (all seeds at chance) has no correlation
                    warnings.simplefilter("ignore")
                    kendalls.append(kendall_tau(x, y))
                    spearmans.append(spearman_rho(x, y))
            k, r, s = statistics.fmean(kendalls), statistics.fmean(spearmans), len(seeds)
            brown = s * r / (1 + (s - 1) * r) if math.isfinite(r) and 1 + (s - 1) * r > 0 else float("nan")
            entry[name] = {"seed_to_seed_kendall": _round(k), "seed_to_seed_spearman": _round(r),
                           "spearman_brown_mean_of_seeds": _round(brown)}
        ordered = sorted(means, reverse=True)
        best = ordered[0] if "accuracy" in metric else ordered[-1]
        close_pairs = sum(1 for a, b in itertools.combinations(means, 2) if abs(a - b) < tie_threshold)
        pairs = len(means) * (len(means) - 1) // 2
        entry["spread"] = {"best": best, "mean": round(statistics.fmean(means), 4),
                           "worst": ordered[-1] if "accuracy" in metric else ordered[0],
                           "median": round(statistics.median(means), 4),
                           "within_threshold_of_best": sum(1 for m in means if abs(m - best) < tie_threshold),
                           "pairs_within_threshold": close_pairs,
                           "fraction_of_pairs_within_threshold": round(close_pairs / max(1, pairs), 4),
                           "mean_seed_std": round(statistics.fmean(float(r[f"{metric}_std"]) for r in rows), 4)}
        summary[metric] = entry
    return summary


def _round(value: float) -> Optional[float]:
    """4 decimals; None for an undefined correlation (constant column), which JSON cannot hold as NaN."""
    return round(value, 4) if math.isfinite(value) else None
