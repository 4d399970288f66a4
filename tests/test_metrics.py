"""Ranking metrics against scipy and hand-computed values."""
from __future__ import annotations

import math
from itertools import product

import numpy as np
import pytest
from scipy import stats

from lightning_nas.metrics import (
    kendall_tau,
    p_beat_random,
    p_beat_random_over_runs,
    p_random_as_good,
    ranking_agreement,
    sparse_kendall_tau,
    sparsify,
    spearman_rho,
)
from lightning_nas.metrics.random_baseline import (
    RandomPolicy,
    exact_rank_test,
    one_sample_t,
)

# ground truth with ties (two 93.1, two 90.0) against scores with a tie of their own
TRUTH = [93.1, 90.0, 93.1, 91.5, 90.0, 94.2, 89.7]
SCORES = [0.61, 0.40, 0.55, 0.55, 0.42, 0.70, 0.20]


def test_kendall_matches_scipy_tau_b_with_ties():
    assert kendall_tau(TRUTH, SCORES) == pytest.approx(stats.kendalltau(TRUTH, SCORES, variant="b").statistic)


def test_kendall_hand_values():
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # one discordant pair of six
    assert kendall_tau([1, 2, 3, 4], [1, 2, 4, 3]) == pytest.approx(4 / 6)
    # tau-b with one tie in truth: C=2, D=0; n0=3, n1=1, n2=0 -> 2 / sqrt(2 * 3)
    assert kendall_tau([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / math.sqrt(6))


def test_spearman_matches_scipy_and_hand_value_with_ties():
    assert spearman_rho(TRUTH, SCORES) == pytest.approx(stats.spearmanr(TRUTH, SCORES).statistic)
    # average ranks: truth [1.5, 1.5, 3], scores [1, 2, 3]: Pearson of the ranks = 0.8660...
    assert spearman_rho([5, 5, 7], [1, 2, 3]) == pytest.approx(np.corrcoef([1.5, 1.5, 3], [1, 2, 3])[0, 1])
    assert spearman_rho([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(1 - 6 * 2 / (4 * 15))


@pytest.mark.parametrize("metric", [kendall_tau, spearman_rho, sparse_kendall_tau])
def test_shape_errors(metric):
    with pytest.raises(ValueError, match="equal-length"):
        metric([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="at least 2"):
        metric([1], [1])


def test_sparse_kendall_threshold_zero_is_plain_kendall():
    # exact ties in the ground truth must stay ties (not be broken by position)
    assert sparse_kendall_tau(TRUTH, SCORES, threshold=0.0, variant="bins") == pytest.approx(kendall_tau(TRUTH, SCORES))
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 5, 30).astype(float)
    scores = rng.normal(size=30)
    assert sparse_kendall_tau(truth, scores, threshold=0.0, variant="bins") == pytest.approx(kendall_tau(truth, scores))
    np.testing.assert_array_equal(sparsify([3.0, 1.0, 3.0, 2.0], 0.0, grouping="anchored"), [2, 0, 2, 1])
    np.testing.assert_array_equal(sparsify([3.0, 1.0, 3.0, 2.0], 0.0), [3, 1, 3, 2])
    assert sparse_kendall_tau(truth, scores, threshold=0.0, variant="anchored") == pytest.approx(
        kendall_tau(truth, scores))


def test_sparse_kendall_values_within_threshold_become_ties():
    truth = [1.0, 1.05, 1.2, 2.0]
    scores = [2.0, 1.0, 3.0, 4.0]
    # plain: 5 concordant, 1 discordant pair -> 4/6
    assert kendall_tau(truth, scores) == pytest.approx(4 / 6)
    # 1.0 and 1.05 are one group: C=5, D=0, one tie in truth -> 5 / sqrt((6 - 1) * 6)
    np.testing.assert_array_equal(sparsify(truth, 0.1, grouping="anchored"), [0, 0, 1, 2])
    np.testing.assert_array_equal(sparsify(truth, 0.1), [10, 10, 12, 20])  # bins floor(v / 0.1)
    assert sparse_kendall_tau(truth, scores, threshold=0.1, variant="bins") == pytest.approx(5 / math.sqrt(5 * 6))
    # the default threshold is 0.1 accuracy points
    assert sparse_kendall_tau(truth, scores, variant="bins") == pytest.approx(5 / math.sqrt(30))


def test_sparsify_anchored_groups_do_not_chain():
    # 0.06 joins 0's group; 0.12 is 0.12 above the group's smallest value, so it starts a new one
    np.testing.assert_array_equal(sparsify([0.12, 0.0, 0.06], 0.1, grouping="anchored"), [1, 0, 0])
    np.testing.assert_array_equal(sparsify([0.0, 0.1, 0.2], 0.1, grouping="anchored"), [0, 1, 2])


def test_sparsify_bins_are_floor_of_value_over_threshold():
    np.testing.assert_array_equal(sparsify([0.12, 0.0, 0.06, 0.19, 0.2], 0.1), [1, 0, 0, 1, 2])
    # values on a bin edge land in that bin although 0.3 / 0.1 == 2.9999999999999996 in floating point
    np.testing.assert_array_equal(sparsify([0.3, 0.7, 93.1], 0.1), [3, 7, 931])
    with pytest.raises(ValueError, match="grouping"):
        sparsify([1.0, 2.0], 0.1, grouping="greedy")


def test_sparse_kendall_hand_worked_example_three_variants():
    """docs/metrics.md's example. Ground truth (ascending) 93.08, 93.12, 93.17, 93.25, threshold 0.1;
    super-net scores 2, 1, 4, 3. Bins floor(acc / 0.1) = 930, 931, 931, 932.

    authors (their released code, the default): x = bins in ascending ground-truth order
    = [930, 931, 931, 932]; y = bins of the architectures in ascending score order (93.12, 93.08,
    93.25, 93.17) = [931, 930, 932, 931]. Position pairs: (1,2) discordant, (1,3) concordant, (1,4)
    tied in y, (2,3) tied in x, (2,4) concordant, (3,4) discordant: C=2, D=2 -> tau_b = 0 / sqrt(5 x 5)
    = 0.000 (issue 19's value of their code).
    bins, paired by architecture: one tied pair (93.12, 93.17); (93.08, 93.12) and (93.17, 93.25)
    discordant, three concordant: C=3, D=2, n1=1 -> (3 - 2) / sqrt(5 x 6) = 0.183.
    anchored: 93.08 anchors a group taking 93.12 and 93.17; 93.25 starts the next: three tied pairs;
    (93.17, 93.25) discordant: C=2, D=1 -> 1 / sqrt(3 x 6) = 0.236.
    plain Kendall: C=4, D=2 -> 1/3."""
    truth, scores = [93.08, 93.12, 93.17, 93.25], [2.0, 1.0, 4.0, 3.0]
    np.testing.assert_array_equal(sparsify(truth, 0.1), [930, 931, 931, 932])
    np.testing.assert_array_equal(sparsify(truth, 0.1, grouping="anchored"), [0, 0, 0, 1])
    assert sparse_kendall_tau(truth, scores) == pytest.approx(0.0, abs=1e-12)  # the authors' code is the default
    assert sparse_kendall_tau(truth, scores, 0.1, variant="authors") == pytest.approx(0.0, abs=1e-12)
    assert sparse_kendall_tau(truth, scores, 0.1, variant="bins") == pytest.approx(1 / math.sqrt(30))
    assert sparse_kendall_tau(truth, scores, 0.1, variant="anchored") == pytest.approx(1 / math.sqrt(18))
    assert kendall_tau(truth, scores) == pytest.approx(1 / 3)
    # shuffling the architectures changes none of them (no score ties here)
    order = [2, 0, 3, 1]
    for variant, value in (("authors", 0.0), ("bins", 1 / math.sqrt(30)), ("anchored", 1 / math.sqrt(18))):
        assert sparse_kendall_tau([truth[i] for i in order], [scores[i] for i in order],
                                  variant=variant) == pytest.approx(value, abs=1e-12)


def test_sparse_kendall_authors_pairs_positions_not_architectures():
    """Without ties in bins or scores every variant is plain Kendall tau; a perfect ordering gives 1
    under the authors' pairing even with tied bins (x and y are then the same sequence); score ties
    are broken by input order (stable), so the authors' value depends on it while the others do not."""
    rng = np.random.default_rng(1)
    truth = rng.permutation(40).astype(float)  # bins of width 0.1 around integers: no ties
    scores = rng.normal(size=40)
    for variant in ("authors", "bins", "anchored"):
        assert sparse_kendall_tau(truth, scores, variant=variant) == pytest.approx(kendall_tau(truth, scores))
    tied_truth = [1.0, 1.01, 2.0, 2.05, 3.0]
    assert sparse_kendall_tau(tied_truth, tied_truth) == pytest.approx(1.0)
    # two architectures tie in score: listed one way they read as ordered right, the other way wrong
    truth, scores = [1.0, 2.0, 3.0], [0.5, 0.5, 0.9]
    assert sparse_kendall_tau(truth, scores) == pytest.approx(1.0)
    assert sparse_kendall_tau(truth[::-1], scores[::-1]) == pytest.approx(1 / 3)
    assert sparse_kendall_tau(truth, scores, variant="bins") == pytest.approx(
        sparse_kendall_tau(truth[::-1], scores[::-1], variant="bins"))
    with pytest.raises(ValueError, match="variant"):
        sparse_kendall_tau(truth, scores, variant="greedy")


def test_sparse_kendall_large_threshold_is_nan():
    """Decision: when every ground-truth value falls in one group there is no order to agree with,
    and Kendall tau-b is undefined (0/0): nan, as scipy gives for a constant input. Callers report
    nan rather than a misleading 0."""
    assert math.isnan(sparse_kendall_tau(TRUTH, SCORES, threshold=100.0))
    assert math.isnan(sparse_kendall_tau(TRUTH, SCORES, threshold=100.0, variant="anchored"))


def test_sparsify_rejects_negative_threshold():
    with pytest.raises(ValueError, match="threshold"):
        sparsify([1.0, 2.0], -0.1)


@pytest.mark.parametrize("rank, rmax, n, expected", [
    (1, 100, 1, 0.01),
    (10, 100, 1, 0.1),
    (10, 100, 2, 1 - 0.9 ** 2),  # 0.19
    (50, 100, 3, 1 - 0.5 ** 3),  # 0.875
    (100, 100, 1, 1.0),  # the worst rank: any draw is as good
    (1, 15_625, 100, 1 - (1 - 1 / 15_625) ** 100),
])
def test_p_random_as_good_and_its_complement(rank, rmax, n, expected):
    assert p_random_as_good(rank, rmax, n) == pytest.approx(expected)
    assert p_beat_random(rank, rmax, n) == pytest.approx(1 - expected)
    assert p_random_as_good(rank, rmax, n) + p_beat_random(rank, rmax, n) == pytest.approx(1.0)


def test_p_random_is_monotone():
    assert p_random_as_good(5, 100, 1) < p_random_as_good(6, 100, 1)
    assert p_random_as_good(5, 100, 1) < p_random_as_good(5, 100, 2)


@pytest.mark.parametrize("rank, rmax, n", [(0, 100, 1), (101, 100, 1), (-1, 100, 1), (1, 100, 0)])
def test_p_random_rejects_invalid_arguments(rank, rmax, n):
    for fn in (p_random_as_good, p_beat_random):
        with pytest.raises(ValueError, match="1 <= rank <= num_architectures"):
            fn(rank, rmax, n)


# Yu et al. (ICLR 2020) Table 3 (B): NAS-Bench-101 n=7 (423,624 architectures), 10 runs per method;
# best rank over the runs and the printed p(>random)
YU_TABLE3 = [("DARTS", 57079, 0.24), ("NAO", 19552, 0.62), ("ENAS", 96939, 0.07)]


@pytest.mark.parametrize("method, best_rank, printed", YU_TABLE3)
def test_p_beat_random_over_runs_reproduces_yu_et_al_table3(method, best_rank, printed):
    rng = np.random.default_rng(best_rank)
    # ten runs whose best rank is the table's; the other nine are worse (their values do not matter)
    ranks = [best_rank, *rng.integers(best_rank + 1, 423_624, 9)]
    rng.shuffle(ranks)
    p = p_beat_random_over_runs(ranks, 423_624)
    assert round(p, 2) == printed, method
    assert p == pytest.approx((1 - best_rank / 423_624) ** 10)
    # the per-run average with n = 1 (what the report printed before) is a different number
    assert round(float(np.mean([p_beat_random(int(r), 423_624) for r in ranks])), 2) != printed


def test_p_beat_random_over_runs_skips_missing_ranks():
    assert p_beat_random_over_runs([10, float("nan"), 20], 100) == pytest.approx(0.9 ** 2)
    assert math.isnan(p_beat_random_over_runs([float("nan")], 100))
    assert math.isnan(p_beat_random_over_runs([], 100))


def test_ranking_agreement_is_oriented_and_needs_truth():
    """One definition for the ranking callback and the report: positive means agreement, also for a
    lower-is-better truth (a loss), and nothing without ground truth for every architecture."""
    scores = [0.1, 0.5, 0.9, 0.3]
    accuracy = [60.0, 70.0, 80.0, 65.0]  # same order as the scores
    agree = ranking_agreement(accuracy, scores)
    assert agree == {"kendall_tau": 1.0, "sparse_kendall_tau": 1.0, "spearman": 1.0}
    loss = [-a for a in accuracy]  # lower is better: the same order of goodness
    assert ranking_agreement(loss, scores, higher_is_better=False) == agree
    assert ranking_agreement(loss, scores)["kendall_tau"] == -1.0
    assert ranking_agreement([60.0, float("nan")], [0.1, 0.2]) == {} and ranking_agreement([60.0], [0.1]) == {}


# --- the exact random policy of a complete table (lightning_nas/metrics/random_baseline.py) ---

SMALL_TABLE = [70.0, 72.5, 72.5, 80.0, 91.0]


@pytest.mark.parametrize("n", [1, 2, 3])
def test_random_policy_best_of_n_matches_enumeration(n):
    policy = RandomPolicy.from_table(SMALL_TABLE)
    bests = [max(draw) for draw in product(SMALL_TABLE, repeat=n)]  # every equally likely n-tuple
    values, p = policy.best_of(n)
    for value, prob in zip(values, p, strict=True):
        assert prob == pytest.approx(sum(b == value for b in bests) / len(bests))
    assert policy.mean(n) == pytest.approx(np.mean(bests))
    assert policy.sd(n) == pytest.approx(np.std(bests))
    assert policy.expected_regret(n) == pytest.approx(np.mean([91.0 - b for b in bests]))
    for answer in (60.0, 72.5, 75.0, 91.0):
        assert policy.p_beat(answer, n) == pytest.approx(np.mean([answer > b for b in bests]))
        assert policy.p_tie(answer, n) == pytest.approx(np.mean([answer == b for b in bests]))


def test_random_policy_p_beat_is_yu_eq1_without_ties_and_orients_losses():
    table = np.arange(1.0, 101.0)
    policy = RandomPolicy.from_table(table)
    for rank in (1, 7, 50, 100):
        answer = 101.0 - rank
        assert policy.p_beat(answer, 3) == pytest.approx(p_beat_random(rank, 100, 3))
    losses = RandomPolicy.from_table([3.0, 1.0, 2.0], higher_is_better=False)
    assert losses.best == -1.0 and losses.p_beat(-1.0) == pytest.approx(2 / 3)
    assert RandomPolicy.from_table(SMALL_TABLE).quantile(0.5) == 72.5


def test_exact_rank_test_matches_enumeration_and_hand_value():
    policy = RandomPolicy.from_table(SMALL_TABLE)
    answers = [91.0, 80.0, 72.5]
    observed = sum(policy.mid(a) for a in answers)
    sums = [sum(policy.mid(a) for a in draw) for draw in product(SMALL_TABLE, repeat=3)]
    upper = np.mean([s >= observed - 1e-12 for s in sums])
    lower = np.mean([s <= observed + 1e-12 for s in sums])
    result = exact_rank_test(answers, policy)
    assert result.p == pytest.approx(min(1.0, 2 * min(upper, lower)))
    assert result.superiority == pytest.approx(observed / 3)
    # a table 0..9 and two answers that are both the best: u = 0.95 each, and only (9, 9) reaches that
    # sum under H0 (probability 1/100): two-sided p = 0.02, A = 0.95
    ten = RandomPolicy.from_table(range(10))
    result = exact_rank_test([9, 9], ten)
    assert result.p == pytest.approx(0.02) and result.superiority == pytest.approx(0.95)
    # answers that look like random draws are not rejected: the table's own median twice
    assert exact_rank_test([4.5 - 0.5, 5.0], ten).p == pytest.approx(1.0)


def test_one_sample_t_against_the_exact_mean():
    policy = RandomPolicy.from_table(range(10))  # exact mean 4.5
    answers = [5.5, 6.5, 7.5]  # differences 1, 2, 3: mean 2, sd 1 -> t = 2 / (1 / sqrt 3)
    result = one_sample_t(answers, policy)
    assert result.mean_difference == pytest.approx(2.0)
    assert result.t == pytest.approx(2 * math.sqrt(3))
    assert result.p == pytest.approx(2 * stats.t.sf(2 * math.sqrt(3), 2))
    half = stats.t.ppf(0.975, 2) / math.sqrt(3)
    assert (result.ci_low, result.ci_high) == (pytest.approx(2 - half), pytest.approx(2 + half))


def test_decision_margins_of_rows_and_segments_and_the_decoding_callback():
    import torch

    from callbacks.decoding import ArchitectureDecoding
    from lightning_nas.metrics.margins import decision_margins, top_two_margin
    from lightning_nas.spaces.decisions import WeightGroup

    assert top_two_margin([0.36, 0.31, 0.33]) == pytest.approx(0.03)
    assert top_two_margin([1.0]) == 1.0
    groups = [WeightGroup("ops", (2, 3)), WeightGroup("edges", (5,), ((0, 2), (2, 5)))]
    weights = {"ops": torch.tensor([[0.5, 0.3, 0.2], [0.34, 0.33, 0.33]]),
               "edges": torch.tensor([0.6, 0.4, 0.2, 0.2, 0.6])}
    margins = decision_margins(groups, weights)
    assert margins == {"ops[0]": pytest.approx(0.2), "ops[1]": pytest.approx(0.01),
                       "edges{0:2}": pytest.approx(0.2), "edges{2:5}": pytest.approx(0.4)}

    class Relaxed:  # what the callback needs of a DARTS-family strategy
        def __init__(self):
            self.groups = groups

        def normalised_weights(self):
            return weights

    assert ArchitectureDecoding.margins(Relaxed()) == margins
    assert ArchitectureDecoding.margins(object()) == {}  # SPOS, ENAS: no normalised weights


def test_sparse_kendall_authors_matches_their_procedure_step_by_step():
    """Their procedure, step by step on accuracies in percent: scale to fractions, walk the
    architectures in ascending ground truth giving a new rank whenever floor(acc * 1000) grows
    (threshold 1e-3), list those ranks in ascending ground-truth order and in ascending score order,
    and take tau-b of the two lists. Values are kept off bin edges (their float arithmetic and our
    rounding agree there)."""
    rng = np.random.default_rng(7)
    for _ in range(20):
        n = int(rng.integers(5, 60))
        truth = np.round(rng.uniform(80, 84, n), 2) + 0.005  # never on a 0.1 edge
        scores = rng.permutation(n).astype(float)  # no score ties: the order is well defined
        fractions = truth * 0.01
        by_truth = np.argsort(fractions, kind="stable")
        rank_of, current, previous = {}, -1, 0.0
        for i in by_truth:
            if math.floor(fractions[i] * 1000) > math.floor(previous * 1000):
                current += 1
            rank_of[int(i)] = current
            previous = fractions[i]
        x = [rank_of[int(i)] for i in by_truth]
        y = [rank_of[int(i)] for i in np.argsort(scores, kind="stable")]
        expected = stats.kendalltau(x, y).statistic
        assert sparse_kendall_tau(truth, scores, 0.1) == pytest.approx(expected, abs=1e-12)
