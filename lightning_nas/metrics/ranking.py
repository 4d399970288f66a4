"""How well a super-net ranks architectures, and how a search compares with random search.

Definitions (docs/metrics.md has the long form):
- Kendall tau-b and Spearman rho between super-net scores and ground truth (scipy.stats).
- Sparse Kendall tau ("How to Train Your Super-Net", Sec. 3.2): ground-truth values closer than
  ``threshold`` (0.1 accuracy points by default) are made ties before Kendall tau-b, so that
  ordering noise among practically equal architectures does not count. Ties are formed greedily
  in ascending order: a value joins the current group while it is less than ``threshold`` above
  the group's smallest value (groups never chain beyond one threshold).
- Yu et al. (ICLR 2020), Eq. 1: ``p = 1 - (1 - r / r_max) ** n`` for the best rank ``r`` (1 = best)
  reached after ``n`` searches out of ``r_max`` architectures. Read literally it is the
  probability that ``n`` uniform random draws contain an architecture ranked ``r`` or better,
  so its complement ``(1 - r / r_max) ** n`` is the probability that the search beats random
  search with the same budget; both are reported.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import stats


def _check(truth: Sequence[float], scores: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    t, s = np.asarray(truth, dtype=float), np.asarray(scores, dtype=float)
    if t.shape != s.shape or t.ndim != 1:
        raise ValueError(f"ground truth and scores must be equal-length vectors, got shapes {t.shape} and {s.shape}")
    if len(t) < 2:
        raise ValueError("a rank correlation needs at least 2 architectures")
    return t, s


def kendall_tau(truth: Sequence[float], scores: Sequence[float]) -> float:
    t, s = _check(truth, scores)
    return float(stats.kendalltau(t, s, variant="b").statistic)


def spearman_rho(truth: Sequence[float], scores: Sequence[float]) -> float:
    t, s = _check(truth, scores)
    return float(stats.spearmanr(t, s).statistic)


def sparsify(values: Sequence[float], threshold: float) -> np.ndarray:
    """Replace each value by the index of its tie group (groups span less than ``threshold``)."""
    if not threshold >= 0:
        raise ValueError(f"sparse Kendall threshold must be >= 0, got {threshold}")
    v = np.asarray(values, dtype=float)
    order = np.argsort(v, kind="stable")
    groups = np.empty(len(v), dtype=float)
    group, anchor = -1, -np.inf
    for i in order:
        # equal values always share a group, so threshold 0 leaves exact ties tied (plain tau-b)
        if v[i] > anchor and v[i] - anchor >= threshold:
            group, anchor = group + 1, v[i]
        groups[i] = group
    return groups


def sparse_kendall_tau(truth: Sequence[float], scores: Sequence[float], threshold: float = 0.1) -> float:
    """Kendall tau-b after ``sparsify(truth, threshold)``; ``threshold=0`` is plain tau-b. nan when every
    ground-truth value falls into one group (no order left to agree with), as scipy gives for a constant."""
    t, s = _check(truth, scores)
    return float(stats.kendalltau(sparsify(t, threshold), s, variant="b").statistic)


def p_random_as_good(rank: int, num_architectures: int, n: int = 1) -> float:
    """Yu et al. Eq. 1 as printed: P(n random draws hold an architecture ranked <= rank)."""
    if not 1 <= rank <= num_architectures or n < 1:
        raise ValueError(f"need 1 <= rank <= num_architectures and n >= 1, got rank={rank}, "
                         f"num_architectures={num_architectures}, n={n}")
    return 1.0 - (1.0 - rank / num_architectures) ** n


def p_beat_random(rank: int, num_architectures: int, n: int = 1) -> float:
    """Probability that the search's best (rank ``rank``) beats random search with budget ``n``."""
    return 1.0 - p_random_as_good(rank, num_architectures, n)
