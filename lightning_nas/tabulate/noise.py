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
    * split-half reliability of the seed mean (``split_half``): the seeds are split into two halves,
      the Spearman correlation of the two half-means is stepped up to the full seed count with
      Spearman-Brown ``2 r / (1 + r)``, averaged over all balanced splits (50 sampled beyond 8 seeds);
      and the top-quartile agreement: the fraction of the top 25 % by one half-mean that is also in
      the top 25 % by the other (0.25 by chance, 1 when both halves pick the same quarter);
    * the spread of the means: best, mean, worst, and how many architectures lie within
      ``tie_threshold`` of the best and what fraction of pairs lie within it of each other
      (the pairs sparse Kendall tau treats as ties).
    """
    from lightning_nas.metrics import kendall_tau, spearman_rho

    with Path(path).open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    summary: dict[str, Any] = {"architectures": len(rows), "seeds": len(seeds), "tie_threshold": tie_threshold}
    for metric in metrics:
        per_seed = [[float(r[f"{metric}_seed{s}"]) for r in rows] for s in seeds]
        # the mean over *these* seeds (not the file's mean column): a ceiling for the first S seeds of a
        # longer table must not pick its better half by seeds it does not have
        means = [statistics.fmean(column) for column in zip(*per_seed, strict=True)]
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
        if len(seeds) >= 2 and len(rows) >= 4:
            entry["split_half"] = split_half(per_seed, higher_is_better="accuracy" in metric)
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


def split_half(per_seed: Sequence[Sequence[float]], higher_is_better: bool = True,
               max_splits: int = 50) -> dict[str, Any]:
    """Split-half reliability of the seed mean and top-quartile agreement (see ``noise_ceiling``).

    ``per_seed[s][i]``: the value of architecture i with seed s. With S seeds the halves hold
    floor(S/2) and ceil(S/2) seeds; for odd S the Spearman-Brown step-up (factor 2) is approximate.
    """
    import numpy as np

    from lightning_nas.metrics import spearman_rho

    values = np.asarray(per_seed, dtype=float)
    count, n = values.shape
    half = count // 2
    splits = [c for c in itertools.combinations(range(count), half) if 0 in c or 2 * half != count]
    if len(splits) > max_splits:
        rng = np.random.default_rng(0)
        splits = [splits[i] for i in sorted(rng.choice(len(splits), max_splits, replace=False))]
    quarter = max(1, int(round(n / 4)))
    rhos, agreements = [], []
    for first in splits:
        second = [s for s in range(count) if s not in first]
        a, b = values[list(first)].mean(axis=0), values[second].mean(axis=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rhos.append(spearman_rho(a, b))
        sign = -1.0 if higher_is_better else 1.0
        top_a = set(np.argsort(sign * a, kind="stable")[:quarter].tolist())
        top_b = set(np.argsort(sign * b, kind="stable")[:quarter].tolist())
        agreements.append(len(top_a & top_b) / quarter)
    finite = [r for r in rhos if math.isfinite(r)]
    r = statistics.fmean(finite) if finite else float("nan")
    brown = 2 * r / (1 + r) if math.isfinite(r) and r > -1 else float("nan")
    return {"splits": len(splits), "seeds_per_half": [half, count - half], "spearman_half_means": _round(r),
            "spearman_brown": _round(brown), "top_quartile_size": quarter,
            "top_quartile_agreement": _round(statistics.fmean(agreements)),
            "top_quartile_agreement_by_chance": _round(quarter / n)}
