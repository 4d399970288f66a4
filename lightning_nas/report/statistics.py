"""Summary statistics of a group of trials: mean ± sample std, Welch's t-test, formatting."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from lightning_nas.report.common import NAN


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
