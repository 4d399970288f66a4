"""How well a super-net ranks architectures, and how a search compares with random search.

Definitions (docs/metrics.md has the long form, with a worked example):
- Kendall tau-b and Spearman rho between super-net scores and ground truth (scipy.stats).
- Sparse Kendall tau ("How to Train Your Super-Net", Sec. 3.2 and its released code): ground-truth
  values are grouped into ties before Kendall tau-b, so that ordering noise among practically equal
  architectures does not count. Three variants (``SPARSE_VARIANTS``):

  * ``variant="authors"`` (default): what the authors' released code computes
    (``compute_sparse_rank_metric`` in kcyu2014/nas-landmarkreg, ``nasws/cnn/utils.py``). The ground
    truth is binned, ``floor(acc / threshold)``; then Kendall tau-b is taken between two *sequences of
    positions*: the bins in ascending ground-truth order, and the bins of the architectures listed in
    ascending super-net-score order. Position k of one is paired with position k of the other, not
    architecture with architecture; ties are the positions whose k-th best ground truths share a bin.
    Ties in the super-net score are broken by input order (a stable sort; their ``np.argsort`` leaves
    that order to the sort algorithm);
  * ``variant="bins"``: the same bins, paired architecture with architecture (tau-b of the bins
    against the scores, score ties kept as ties); the project's default before issue 19;
  * ``variant="anchored"``: greedy groups in ascending order; a value joins the current group while
    it is less than ``threshold`` above the group's smallest value (groups never span a threshold),
    paired architecture with architecture.

  All three agree when neither the binned ground truth nor the scores tie; they differ on bin edges
  (93.08 and 93.12 are in different bins, 930 and 931, but one anchored group) and in how a tie is
  paired. docs/metrics.md works one example through all three (authors 0, bins 0.183, anchored 0.236).
- Yu et al. (ICLR 2020), Eq. 1 prints ``p = 1 - (1 - r / r_max) ** n`` for the best rank ``r``
  (1 = best) reached over ``n`` runs out of ``r_max`` architectures. Read literally it is the
  probability that ``n`` uniform random draws contain an architecture ranked ``r`` or better
  (``p_random_as_good``); the values of their Table 3 ("p(>random)": DARTS 0.24, NAO 0.62, ENAS 0.07
  for best ranks 57079, 19552, 96939 of 423,624 over n = 10 runs) are its complement
  ``(1 - r / r_max) ** n`` (``p_beat_random``). The paper's aggregate over a group of runs is
  ``p_beat_random_over_runs(ranks, r_max)``: r = the best rank of the group, n = its number of runs.
"""
from __future__ import annotations

from typing import Literal, Sequence

import numpy as np
from scipy import stats

Grouping = Literal["bins", "anchored"]
GROUPINGS = ("bins", "anchored")
SparseVariant = Literal["authors", "bins", "anchored"]
SPARSE_VARIANTS = ("authors", "bins", "anchored")
DEFAULT_SPARSE_VARIANT: SparseVariant = "authors"  # the authors' released code (issue 19)


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


def _anchored(v: np.ndarray, threshold: float) -> np.ndarray:
    order = np.argsort(v, kind="stable")
    groups = np.empty(len(v), dtype=float)
    group, anchor = -1, -np.inf
    for i in order:
        # equal values always share a group, so threshold 0 leaves exact ties tied (plain tau-b)
        if v[i] > anchor and v[i] - anchor >= threshold:
            group, anchor = group + 1, v[i]
        groups[i] = group
    return groups


def _bins(v: np.ndarray, threshold: float) -> np.ndarray:
    if threshold == 0:
        return v.copy()
    # floor(acc / threshold) as in the authors' code; the quotient is rounded to 9 decimals first so
    # that a value on a bin edge lands in its bin in exact arithmetic (0.3 / 0.1 = 2.9999999999999996)
    return np.floor(np.round(v / threshold, 9))


def sparsify(values: Sequence[float], threshold: float, grouping: Grouping = "bins") -> np.ndarray:
    """Replace each value by its tie group: its bin ``floor(v / threshold)`` (``"bins"``, default) or
    the index of its anchored group (``"anchored"``, groups span less than ``threshold``)."""
    if not threshold >= 0:
        raise ValueError(f"sparse Kendall threshold must be >= 0, got {threshold}")
    if grouping not in GROUPINGS:
        raise ValueError(f"sparse Kendall grouping must be one of {', '.join(GROUPINGS)}, got {grouping!r}")
    v = np.asarray(values, dtype=float)
    return _bins(v, threshold) if grouping == "bins" else _anchored(v, threshold)


def _positional_tau(groups: np.ndarray, scores: np.ndarray) -> float:
    """The authors' pairing: tau-b between the groups sorted ascending (position k = the k-th smallest
    ground truth's group) and the groups read in ascending score order (position k = the group of the
    architecture with the k-th smallest score; score ties keep input order)."""
    by_truth = np.sort(groups, kind="stable")
    by_score = groups[np.argsort(scores, kind="stable")]
    return float(stats.kendalltau(by_truth, by_score, variant="b").statistic)


def sparse_kendall_tau(truth: Sequence[float], scores: Sequence[float], threshold: float = 0.1,
                       variant: SparseVariant = DEFAULT_SPARSE_VARIANT) -> float:
    """Sparse Kendall tau of ``scores`` (higher is better) against ``truth``; ``threshold`` in the
    truth's units (0.1 accuracy points = the paper's 0.1 %, their code's 1e-3 on fractions).

    ``variant`` (module docstring): ``"authors"`` (default, their released code: bins, positions
    paired), ``"bins"`` (bins, architectures paired) or ``"anchored"``. ``threshold=0`` leaves exact
    ties only (``"bins"``/``"anchored"`` are then plain tau-b). nan when every ground-truth value
    falls into one group (no order left to agree with), as scipy gives for a constant."""
    if variant not in SPARSE_VARIANTS:
        raise ValueError(f"sparse Kendall variant must be one of {', '.join(SPARSE_VARIANTS)}, got {variant!r}")
    t, s = _check(truth, scores)
    if variant == "authors":
        return _positional_tau(sparsify(t, threshold, "bins"), s)
    return float(stats.kendalltau(sparsify(t, threshold, variant), s, variant="b").statistic)


def ranking_agreement(truth: Sequence[float], scores: Sequence[float], threshold: float = 0.1,
                      variant: SparseVariant = DEFAULT_SPARSE_VARIANT,
                      higher_is_better: bool = True) -> dict[str, float]:
    """Kendall tau, sparse Kendall tau and Spearman rho of super-net ``scores`` (higher is better)
    against the ground truth, oriented so that a positive value always means agreement (a
    lower-is-better truth such as a loss or perplexity is negated). What the ranking callback logs
    per ranking epoch and what the report recomputes from its CSVs; ``{}`` when fewer than two
    architectures, or not all, have a ground truth."""
    if len(truth) < 2 or not all(np.isfinite(t) for t in truth):
        return {}
    goodness = list(truth) if higher_is_better else [-t for t in truth]
    return {"kendall_tau": kendall_tau(goodness, scores),
            "sparse_kendall_tau": sparse_kendall_tau(goodness, scores, threshold, variant=variant),
            "spearman": spearman_rho(goodness, scores)}


def p_random_as_good(rank: int, num_architectures: int, n: int = 1) -> float:
    """Yu et al. Eq. 1 as printed: P(n random draws hold an architecture ranked <= rank)."""
    if not 1 <= rank <= num_architectures or n < 1:
        raise ValueError(f"need 1 <= rank <= num_architectures and n >= 1, got rank={rank}, "
                         f"num_architectures={num_architectures}, n={n}")
    return 1.0 - (1.0 - rank / num_architectures) ** n


def p_beat_random(rank: int, num_architectures: int, n: int = 1) -> float:
    """Probability that the search's best (rank ``rank``) beats random search with budget ``n``
    (Yu et al. Table 3's "p(>random)")."""
    return 1.0 - p_random_as_good(rank, num_architectures, n)


def p_beat_random_over_runs(ranks: Sequence[float], num_architectures: int) -> float:
    """Yu et al.'s aggregate over a group of runs: r = the best (smallest) rank over the runs, n = the
    number of runs; nan without a finite rank. Non-finite ranks (no ground truth) are left out."""
    finite = [float(r) for r in ranks if r is not None and np.isfinite(r)]
    if not finite:
        return float("nan")
    return p_beat_random(int(min(finite)), int(num_architectures), len(finite))
