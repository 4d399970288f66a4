"""The random policy, exactly, from a complete table; and one-sample tests of a strategy against it.

A complete table lists the ground truth of every one of the N architectures of a space, so the
random policy (uniform draws, with replacement, as Yu et al. (ICLR 2020) Eq. 1 assumes) needs no
sampling: with F(x) = #{v <= x} / N and F_<(x) = #{v < x} / N,

- one draw has the table's empirical distribution (mean, sd with ddof=0: the population's);
- the best of n draws B_n has P(B_n <= x) = F(x)^n, so its probability mass on a distinct value u is
  F(u)^n - F_<(u)^n, and E[regret] = max(v) - E[B_n];
- an answer of ground truth a beats random search with budget n with probability
  P(a > B_n) = F_<(a)^n, ties it with F(a)^n - F_<(a)^n. Without ties in the table F_<(a) = (N - r) / N
  for a's rank r (1 = best), Yu et al.'s p = (1 - r / r_max)^n.

Tests of k answers x_1..x_k (one per seed) against one random draw (H0: each answer is distributed as a
uniform draw from the table):

- ``exact_rank_test``: the primary test. Each answer's mid-distribution value
  u(x) = F_<(x) + (F(x) - F_<(x)) / 2 (Parzen's mid-distribution function) has mean exactly 1/2 under
  H0 for any discrete table; the mean of the u_i estimates A = P(answer > draw) + P(tie) / 2, the
  probability of superiority (Vargha & Delaney 2000), i.e. the one-sample form of the Mann-Whitney
  statistic against a fully known reference (Mann & Whitney 1947). Because the table is the whole
  population, the null distribution of sum(u_i) is computed exactly by convolving the table's
  distribution of u k times; p is two-sided (twice the smaller tail, capped at 1). No normality or
  symmetry is assumed, so it is valid for k = 5 skewed ground truths, where a t-test is not.
- ``one_sample_t``: ``scipy.stats.ttest_1samp`` of the ground truths against the exact mean, with the
  95 % t interval of the mean difference (Student 1908). It tests the mean only and leans on the
  sample mean being near normal, which a skewed ground truth and few seeds undermine; reported beside
  the rank test, never instead of it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np


def _values(table: Sequence[float]) -> np.ndarray:
    v = np.asarray([float(x) for x in table], dtype=float)
    if v.ndim != 1 or len(v) == 0 or not np.all(np.isfinite(v)):
        raise ValueError("a complete table needs at least one finite ground-truth value per architecture")
    return np.sort(v)


@dataclass(frozen=True)
class RandomPolicy:
    """The exact random policy of a complete table (values oriented higher-is-better)."""

    sorted_values: np.ndarray

    @classmethod
    def from_table(cls, table: Sequence[float], higher_is_better: bool = True) -> "RandomPolicy":
        v = _values(table)
        return cls(v if higher_is_better else np.sort(-v))

    @property
    def size(self) -> int:
        return len(self.sorted_values)

    @property
    def best(self) -> float:
        return float(self.sorted_values[-1])

    def cdf(self, x: float) -> float:
        """F(x) = P(draw <= x)."""
        return float(np.searchsorted(self.sorted_values, x, side="right")) / self.size

    def cdf_below(self, x: float) -> float:
        """F_<(x) = P(draw < x)."""
        return float(np.searchsorted(self.sorted_values, x, side="left")) / self.size

    def best_of(self, n: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """(distinct values, probabilities) of the best of ``n`` uniform draws: F(u)^n - F_<(u)^n."""
        if n < 1:
            raise ValueError(f"the random policy needs n >= 1 draws, got {n}")
        values, counts = np.unique(self.sorted_values, return_counts=True)
        upper = np.cumsum(counts) / self.size
        lower = upper - counts / self.size
        return values, upper ** n - lower ** n

    def mean(self, n: int = 1) -> float:
        values, p = self.best_of(n)
        return float(np.dot(values, p))

    def sd(self, n: int = 1) -> float:
        values, p = self.best_of(n)
        m = float(np.dot(values, p))
        return math.sqrt(max(0.0, float(np.dot((values - m) ** 2, p))))

    def quantile(self, q: float, n: int = 1) -> float:
        """Smallest value u with P(B_n <= u) >= q."""
        values, p = self.best_of(n)
        return float(values[min(len(values) - 1, int(np.searchsorted(np.cumsum(p), q - 1e-12)))])

    def expected_regret(self, n: int = 1) -> float:
        """E[max(table) - best of n draws]."""
        return self.best - self.mean(n)

    def p_beat(self, answer: float, n: int = 1) -> float:
        """P(answer > best of n draws) = F_<(answer)^n."""
        return self.cdf_below(answer) ** n

    def p_tie(self, answer: float, n: int = 1) -> float:
        return self.cdf(answer) ** n - self.cdf_below(answer) ** n

    def mid(self, answer: float) -> float:
        """Parzen's mid-distribution value F_<(a) + P(draw = a) / 2 (mean 1/2 under H0)."""
        return (self.cdf_below(answer) + self.cdf(answer)) / 2


@dataclass(frozen=True)
class RankTest:
    """``exact_rank_test``'s result: A = mean mid-distribution value (P(beat) + P(tie)/2), exact p."""

    n: int
    superiority: float
    p: float


def exact_rank_test(answers: Sequence[float], policy: RandomPolicy) -> RankTest:
    """Exact two-sided test of H0 "the answers are uniform draws from the table" with the statistic
    sum of mid-distribution values (module docstring). The null distribution is the k-fold
    convolution of the table's distribution of 2N u(x), an integer in [0, 2N]."""
    x = [float(a) for a in answers if a is not None and math.isfinite(a)]
    k = len(x)
    if k == 0:
        return RankTest(0, math.nan, math.nan)
    size = policy.size
    # 2N u(v) for every table entry: (#below) + (#at or below), an integer
    doubled = (np.searchsorted(policy.sorted_values, policy.sorted_values, side="left")
               + np.searchsorted(policy.sorted_values, policy.sorted_values, side="right"))
    one = np.bincount(doubled, minlength=2 * size + 1).astype(float) / size
    null = np.array([1.0])
    for _ in range(k):
        null = np.convolve(null, one)
    observed = int(round(sum(policy.mid(a) for a in x) * 2 * size))
    lower, upper = float(null[:observed + 1].sum()), float(null[observed:].sum())
    return RankTest(k, sum(policy.mid(a) for a in x) / k, min(1.0, 2 * min(lower, upper)))


@dataclass(frozen=True)
class OneSampleT:
    n: int
    mean_difference: float
    ci_low: float
    ci_high: float
    t: float
    p: float


def one_sample_t(answers: Sequence[float], policy: RandomPolicy, n_draws: int = 1,
                 confidence: float = 0.95) -> OneSampleT:
    """``scipy.stats.ttest_1samp`` of the answers against the exact mean of the best of ``n_draws``."""
    from scipy import stats

    x = np.asarray([float(a) for a in answers if a is not None and math.isfinite(a)], dtype=float)
    mu = policy.mean(n_draws)
    if len(x) < 2:
        return OneSampleT(len(x), float(x.mean() - mu) if len(x) else math.nan, math.nan, math.nan, math.nan, math.nan)
    result = stats.ttest_1samp(x, mu)
    interval = result.confidence_interval(confidence)
    return OneSampleT(len(x), float(x.mean() - mu), float(interval.low - mu), float(interval.high - mu),
                      float(result.statistic), float(result.pvalue))
