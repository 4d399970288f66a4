"""Statistics of groups of trials: mean ± sample std, Welch's and paired tests, effect sizes and power.

* ``welch``: Welch's unequal-variance t-test (``scipy.stats.ttest_ind(equal_var=False)``), as Yu et al.
  (ICLR 2020, Table 1) compare each algorithm with the random policy.
* ``paired``: where two conditions share seeds (the same seed ranks the same candidate set and
  draws the same batches), the per-seed differences are what varies: paired t-test
  (``scipy.stats.ttest_rel``) and Wilcoxon signed-rank test (``scipy.stats.wilcoxon``, exact for
  small n without ties), with the effect size d_z = mean difference / sd of the differences.
* ``cohens_d``: (m1 - m2) / pooled sd (Cohen 1988, Eq. 2.5.2 with the pooled sample variance).
* ``seeds_needed``: the number of seeds (per condition) a two-sided test at alpha = 0.05 needs to
  detect an effect of the observed size with power 0.8: the smallest n whose power under the
  noncentral t distribution reaches the target (Cohen 1988, ch. 2; the G*Power computation):
  paired: df = n - 1, noncentrality d_z sqrt(n); two independent groups of n: df = 2n - 2,
  noncentrality d sqrt(n / 2). Checks: d = 0.5 gives 64 per group (Cohen's Table 2.4.1) and
  d_z = 0.5 gives 34 pairs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from lightning_nas.report.common import NAN

ALPHA = 0.05
POWER = 0.8


def _finite(values: Sequence[float]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def summarize(values: Sequence[float]) -> tuple[int, float, float]:
    """(n, mean, sample standard deviation) of the finite values; std is NaN for fewer than 2."""
    v = np.asarray(_finite(values), dtype=float)
    if len(v) == 0:
        return 0, NAN, NAN
    return len(v), float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else NAN


def welch(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Welch's unequal-variance t-test (Welch 1947), as Yu et al. use against random search: (t, p)."""
    from scipy import stats

    x, y = _finite(a), _finite(b)
    if len(x) < 2 or len(y) < 2:
        return NAN, NAN
    result = stats.ttest_ind(x, y, equal_var=False)
    return float(result.statistic), float(result.pvalue)


def cohens_d(a: Sequence[float], b: Sequence[float]) -> float:
    """(mean(a) - mean(b)) / pooled sample standard deviation; nan for fewer than 2 values per side."""
    x, y = _finite(a), _finite(b)
    if len(x) < 2 or len(y) < 2:
        return NAN
    pooled = ((len(x) - 1) * np.var(x, ddof=1) + (len(y) - 1) * np.var(y, ddof=1)) / (len(x) + len(y) - 2)
    diff = float(np.mean(x) - np.mean(y))
    if pooled == 0:
        return NAN if diff == 0 else math.copysign(math.inf, diff)
    return diff / math.sqrt(pooled)


@dataclass
class Paired:
    """A paired comparison of two conditions over their common seeds (a - b)."""

    n: int
    mean_difference: float
    sd_difference: float
    t: float
    p_t: float
    p_wilcoxon: float
    d_z: float
    seeds_needed: float

    @property
    def p(self) -> float:
        return self.p_t


def paired(a: Mapping[object, float], b: Mapping[object, float]) -> Paired:
    """Paired t-test and Wilcoxon signed-rank test of ``a[seed] - b[seed]`` over the seeds both have."""
    from scipy import stats

    seeds = [s for s in a if s in b and math.isfinite(a[s]) and math.isfinite(b[s])]
    x = np.array([a[s] for s in seeds], dtype=float)
    y = np.array([b[s] for s in seeds], dtype=float)
    n = len(seeds)
    if n < 2:
        return Paired(n, float(np.mean(x - y)) if n else NAN, NAN, NAN, NAN, NAN, NAN, NAN)
    diff = x - y
    mean, sd = float(diff.mean()), float(diff.std(ddof=1))
    if sd <= 1e-12 * max(1.0, float(np.abs(x).max()), float(np.abs(y).max())):
        sd = 0.0  # equal differences up to rounding: no seed-to-seed variation left to test against
        diff = np.full_like(diff, mean)
    if sd == 0:
        t, p = (NAN, NAN) if mean == 0 else (math.copysign(math.inf, mean), 0.0)
    else:
        result = stats.ttest_rel(x, y)
        t, p = float(result.statistic), float(result.pvalue)
    if np.all(np.abs(diff) <= 1e-12 * max(1.0, float(np.abs(x).max()))):
        p_w = NAN
    else:
        p_w = float(stats.wilcoxon(x, y).pvalue)
    d_z = mean / sd if sd > 0 else (NAN if mean == 0 else math.copysign(math.inf, mean))
    return Paired(n, mean, sd, t, p, p_w, d_z, seeds_needed(d_z, paired=True))


def power(effect: float, n: int, paired: bool, alpha: float = ALPHA) -> float:
    """Power of the two-sided t-test (noncentral t) for effect size d (two groups of n) or d_z (n pairs)."""
    from scipy import stats

    if n < 2:
        return NAN
    effect = abs(effect)  # the two-sided power is symmetric in the effect's sign
    df, ncp = (n - 1, effect * math.sqrt(n)) if paired else (2 * n - 2, effect * math.sqrt(n / 2))
    crit = stats.t.ppf(1 - alpha / 2, df)
    # the far tail (rejecting on the wrong side) underflows to nan in scipy's noncentral t for large ncp
    wrong_side = float(stats.nct.cdf(-crit, df, ncp))
    return float(stats.nct.sf(crit, df, ncp)) + (0.0 if math.isnan(wrong_side) else wrong_side)


def seeds_needed(effect: float, paired: bool, alpha: float = ALPHA, target: float = POWER,
                 limit: int = 100_000) -> float:
    """Smallest number of seeds (pairs, or seeds per group) reaching ``target`` power; inf for effect 0 or
    beyond ``limit``, nan for an undefined effect, 2 for an infinite effect (no seed-to-seed variation)."""
    if effect is None or math.isnan(effect):
        return NAN
    if math.isinf(effect):
        return 2.0
    effect = abs(effect)
    if effect == 0:
        return math.inf
    # normal-approximation start, then step the exact noncentral-t power
    from scipy import stats

    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(target)
    approx = (z / effect) ** 2 * (1 if paired else 2)
    if approx > limit:
        return math.inf
    n = max(2, int(approx) - 2)
    while power(effect, n, paired, alpha) < target:
        n += 1
        if n > limit:
            return math.inf
    while n > 2 and power(effect, n - 1, paired, alpha) >= target:
        n -= 1
    return float(n)


def fmt(value: float, decimals: int) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{decimals}f}"


def fmt_p(p: float) -> str:
    if p is None or not math.isfinite(p):
        return "-"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def verdict(p: float, alpha: float = ALPHA) -> str:
    """A p-value in words: the report says "no evidence" instead of implying an effect."""
    if p is None or not math.isfinite(p):
        return "not testable"
    shown = "p < 0.001" if p < 0.001 else f"p = {p:.3f}"
    return f"evidence ({shown})" if p < alpha else f"no evidence ({shown})"


def mean_std(values: Sequence[float], decimals: int) -> str:
    n, mean, std = summarize(values)
    if n == 0:
        return "-"
    return fmt(mean, decimals) + (f" ± {fmt(std, decimals)}" if n > 1 else " (n=1)")


def bootstrap_mean_ci(values: Sequence[float], confidence: float = 0.95, resamples: int = 2000,
                      seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): the percentile bootstrap interval of the mean (Efron & Tibshirani 1993,
    ch. 13), with a fixed generator so that a figure redraws identically. The interval lies within
    the data's range, so a band of non-negative values (regret) never dips below zero; nan for no
    data, (m, m, m) for one value."""
    v = np.asarray(_finite(values), dtype=float)
    if len(v) == 0:
        return NAN, NAN, NAN
    if len(v) == 1:
        return float(v[0]), float(v[0]), float(v[0])
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(resamples, len(v)))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(v.mean()), float(low), float(high)
