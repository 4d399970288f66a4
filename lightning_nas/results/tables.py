"""Markdown tables computed from shipped records (``results/<experiment>/``), one function per block.

A block is named ``<experiment>/<table>`` in the docs' markers (``render.py``); ``TABLES`` maps the
table part to its function. Every function takes the experiment's ``Records`` and returns Markdown.

Statistics (every one from scipy.stats or ``metrics/random_baseline.py``):

- against random search on a complete table: the exact random policy (``RandomPolicy``), the exact
  rank test of the answers (A = P(beat) + P(tie)/2 with its exact p) and the one-sample t-test of the
  answers' ground truth against the exact mean, with its 95 % t interval;
- correlations over seeds: mean and 95 % t interval of the mean (Student); paired comparisons of
  scores (accuracy vs loss, same super-net and same architectures per seed): paired t-test
  (``scipy.stats.ttest_rel``) with the 95 % interval of the mean difference, and the Wilcoxon
  signed-rank test (``scipy.stats.wilcoxon``).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from lightning_nas.metrics import sparse_kendall_tau
from lightning_nas.metrics.random_baseline import (
    RandomPolicy,
    exact_rank_test,
    one_sample_t,
)
from lightning_nas.report.common import ReportError
from lightning_nas.results.factors import METRICS, factor_effects, paired_difference
from lightning_nas.results.names import order_key


@dataclass
class Records:
    """An experiment's shipped folder, read back."""

    name: str
    experiment: dict[str, Any]
    trials: list[dict[str, Any]]
    #: the folder the records were read from (its trajectories.jsonl: ``results/anytime.py``)
    folder: Optional[Path] = None

    @classmethod
    def load(cls, folder: Path) -> "Records":
        folder = Path(folder)
        try:
            experiment = json.loads((folder / "experiment.json").read_text())
            # a folder of anytime trajectories only (black-box optimisers) has no trials
            only_trajectories = not (folder / "trials.jsonl").exists() and (folder / "trajectories.jsonl").is_file()
            trials = [] if only_trajectories else [
                json.loads(line) for line in (folder / "trials.jsonl").read_text().splitlines() if line.strip()]
        except (OSError, ValueError) as error:
            raise ReportError(f"{folder}: not a results folder (experiment.json + trials.jsonl or "
                              f"trajectories.jsonl): {error}") from None
        return cls(folder.name, experiment, trials, folder)

    def groups(self) -> dict[str, list[dict[str, Any]]]:
        """Group label -> its trials sorted by seed, groups in the display order of ``names.ORDER``."""
        out: dict[str, list[dict[str, Any]]] = {}
        for trial in self.trials:
            out.setdefault(trial["group"], []).append(trial)
        return {k: sorted(out[k], key=lambda t: (t.get("seed") is None, t.get("seed"))) for k in
                sorted(out, key=order_key)}

    def policy(self) -> Optional[RandomPolicy]:
        """The exact random policy, when the records' table is complete and still the shipped one."""
        info = self.experiment.get("benchmark") or {}
        if not info.get("complete"):
            return None
        import hashlib

        from lightning_nas.benchmarks import TabulatedBenchmark

        table = TabulatedBenchmark(info["table"], metric=info["metric"], higher_is_better=info["higher_is_better"])
        digest = hashlib.sha256(table.path.read_bytes()).hexdigest()
        if digest != info.get("sha256"):
            raise ReportError(f"results/{self.name}: the records were made with another {info['table']} "
                              f"(sha256 {info.get('sha256', '?')[:12]}, shipped {digest[:12]}): re-extract them")
        return RandomPolicy.from_table(list(table.table().values()), table.higher_is_better)


def _f(value: Optional[float], decimals: int) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{decimals}f}"


def _p(p: Optional[float]) -> str:
    return "-" if p is None or not math.isfinite(p) else ("<0.001" if p < 0.001 else f"{p:.3f}")


def _values(trials: list[dict], get: Callable[[dict], Any]) -> list[float]:
    out = []
    for t in trials:
        try:
            v = get(t)
        except (KeyError, TypeError, IndexError):
            v = None
        out.append(float(v) if v is not None else math.nan)
    return out


def mean_ci(values: list[float], confidence: float = 0.95) -> tuple[int, float, float, float]:
    """(n, mean, low, high): the Student t interval of the mean of the finite values."""
    from scipy import stats

    v = np.asarray([x for x in values if math.isfinite(x)], dtype=float)
    if len(v) == 0:
        return 0, math.nan, math.nan, math.nan
    if len(v) < 2 or np.all(v == v[0]):
        return len(v), float(v.mean()), math.nan, math.nan
    low, high = stats.t.interval(confidence, len(v) - 1, loc=v.mean(), scale=stats.sem(v))
    return len(v), float(v.mean()), float(low), float(high)


def _mean_ci_text(values: list[float], decimals: int, bounds: tuple[float, float] = (-math.inf, math.inf)) -> str:
    """``mean [low, high]``, the interval clipped to what the mean can attain (``bounds``: a Kendall tau
    lies in [-1, 1], a mean of table values between the table's worst and best): with 2-3 seeds a
    Student interval reaches past both, and a printed 116 % accuracy would be nonsense."""
    n, mean, low, high = mean_ci(values)
    if n == 0:
        return "-"
    if not math.isfinite(low):
        return _f(mean, decimals)
    low, high = max(low, bounds[0]), min(high, bounds[1])
    return f"{_f(mean, decimals)} [{_f(low, decimals)}, {_f(high, decimals)}]"


KENDALL_RANGE = (-1.0, 1.0)


def _table_range(records: Records) -> tuple[float, float]:
    """The worst and best value of the experiment's complete table (unbounded without one)."""
    policy = records.policy()
    if policy is None:
        return -math.inf, math.inf
    low, high = float(policy.sorted_values[0]), float(policy.sorted_values[-1])  # oriented "higher is better"
    higher = (records.experiment.get("benchmark") or {}).get("higher_is_better", True)
    return (low, high) if higher else (-high, -low)


def final_epoch(trial: dict) -> dict:
    epochs = trial.get("ranking", {}).get("epochs") or []
    return epochs[-1] if epochs else {}


def own_score_agreement(trial: dict, within_subspaces: bool = False) -> dict:
    """The final ranking's correlations by the score the run itself ranked with (``ranking.score``);
    ``within_subspaces``: their mean over the sub-spaces of fixed widths (``extract.subspace_agreement``)."""
    key = "by_loss" if (trial.get("ranking") or {}).get("score") == "loss" else "by_accuracy"
    final = final_epoch(trial)
    return ((final.get("subspaces") or {}) if within_subspaces else final).get(key) or {}


def _goodness(records: Records, values: list[float]) -> list[float]:
    higher = (records.experiment.get("benchmark") or {}).get("higher_is_better", True)
    return values if higher else [-v for v in values]


def random_policy_table(records: Records) -> str:
    policy = records.policy()
    if policy is None:
        return "_No complete table: the random policy is not known exactly; see the sampled random runs._"
    info = records.experiment["benchmark"]
    lines = [f"Exact random policy of `{info['table']}` (`{info['metric']}`, all {policy.size} architectures; "
             "uniform draws with replacement, Yu et al. 2020 Eq. 1):", "",
             "| draws n | mean of the best | sd | 5 % / 50 % / 95 % quantiles | expected regret |",
             "|---|---|---|---|---|"]
    for n in (1, 5, 10):
        quantiles = " / ".join(_f(policy.quantile(q, n), 2) for q in (0.05, 0.5, 0.95))
        lines.append(f"| {n} | {_f(policy.mean(n), 2)} | {_f(policy.sd(n), 2)} | {quantiles} | "
                     f"{_f(policy.expected_regret(n), 2)} |")
    return "\n".join(lines)


def comparison_table(records: Records) -> str:
    """Each group's answers against the exact random policy (one draw per seed, the answer's budget)."""
    policy = records.policy()
    lines = ["| strategy | seeds | answer's ground truth, mean [95 % CI] | rank, median (best) | "
             "regret, mean | A = P(answer > random draw) | exact rank test p | t-test vs exact mean p | "
             "final sparse Kendall tau, mean [95 % CI] |",
             "|---|---|---|---|---|---|---|---|---|"]
    for label, trials in records.groups().items():
        truth = _values(trials, lambda t: t["answer"]["ground_truth"])
        ranks = [r for r in _values(trials, lambda t: t["answer"]["rank"]) if math.isfinite(r)]
        regret = _values(trials, lambda t: t["answer"]["regret"])
        sparse = _values(trials, lambda t: own_score_agreement(t)["sparse_kendall_tau"])
        if policy is not None:
            goodness = _goodness(records, truth)
            rank_test = exact_rank_test(goodness, policy)
            t_test = one_sample_t(goodness, policy)
            a, p_rank, p_t = _f(rank_test.superiority, 2), _p(rank_test.p), _p(t_test.p)
        else:
            a = p_rank = p_t = "-"
        rank_text = f"{np.median(ranks):.0f} ({min(ranks):.0f})" if ranks else "-"
        lines.append(f"| {label} | {len(trials)} | {_mean_ci_text(truth, 2, _table_range(records))} | {rank_text} | "
                     f"{_f(float(np.nanmean(regret)) if any(map(math.isfinite, regret)) else math.nan, 2)} | "
                     f"{a} | {p_rank} | {p_t} | {_mean_ci_text(sparse, 3, KENDALL_RANGE)} |")
    if policy is not None:
        size = policy.size
        mean = _goodness(records, [policy.mean()])[0]  # the policy orders by goodness: back to the metric's sign
        lines.append(f"| random policy (exact, {size} cells) | - | {_f(mean, 2)} | "
                     f"{(size + 1) / 2:.0f} (expected) | {_f(policy.expected_regret(), 2)} | 0.50 | - | - | - |")
    return "\n".join(lines)


def power_table(records: Records) -> str:
    """How far each group's seeds go (issue 19: "the power stated"). Against the exact random mean: the
    observed effect d = (mean - random mean) / sd of the answers' ground truth, the power of the
    one-sample t-test at these seeds for that d, and the seeds it would need for power 0.8 (alpha 0.05,
    noncentral t; ``report.statistics.seeds_needed``). For the final sparse Kendall tau: the half-width
    of its 95 % t interval now, and the seeds for a half-width of 0.05 at the observed sd."""
    from scipy import stats

    from lightning_nas.report.statistics import power, seeds_needed

    policy = records.policy()
    lines = ["| strategy | seeds | d vs exact random mean | power now | seeds for power 0.8 | "
             "sparse Kendall tau: sd | 95 % CI half-width now | seeds for +-0.05 |",
             "|---|---|---|---|---|---|---|---|"]
    for label, trials in records.groups().items():
        truth = [v for v in _goodness(records, _values(trials, lambda t: t["answer"]["ground_truth"]))
                 if math.isfinite(v)]
        sparse = [v for v in _values(trials, lambda t: own_score_agreement(t)["sparse_kendall_tau"]) if math.isfinite(v)]
        d = now = need = math.nan
        if policy is not None and len(truth) >= 2 and np.std(truth, ddof=1) > 0:
            d = (float(np.mean(truth)) - policy.mean()) / float(np.std(truth, ddof=1))
            now, need = power(d, len(truth), paired=True), seeds_needed(d, paired=True)
        sd = half = need_k = math.nan
        if len(sparse) >= 2:
            sd = float(np.std(sparse, ddof=1))
            half = float(stats.t.ppf(0.975, len(sparse) - 1) * sd / math.sqrt(len(sparse)))
            need_k = next((n for n in range(2, 10_000)
                           if stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n) <= 0.05), math.inf)
        lines.append(f"| {label} | {len(trials)} | {_f(d, 2)} | {_f(now, 2)} | {_count(need)} | {_f(sd, 3)} | "
                     f"{_f(half, 3)} | {_count(need_k)} |")
    return "\n".join(lines)


def _count(n: float) -> str:
    return "-" if n is None or (isinstance(n, float) and math.isnan(n)) else ("> 10,000" if math.isinf(n) else f"{n:.0f}")


def paired_scores(trials: list[dict], metric: str) -> tuple[list[float], list[float]]:
    """Per trial, the final ranking epoch's ``metric`` by accuracy and by loss (pairs with both)."""
    acc, loss = [], []
    for t in trials:
        last = final_epoch(t)
        a, b = (last.get("by_accuracy") or {}).get(metric), (last.get("by_loss") or {}).get(metric)
        if a is not None and b is not None:
            acc.append(float(a))
            loss.append(float(b))
    return acc, loss


def factor_table(records: Records) -> str:
    """A one-factor experiment, paired by seed (``factors.factor_effects``): for each level after the
    first, the difference to the first level (level - first) in the answer's ground truth and in the
    final ranking's sparse Kendall tau and Kendall tau (by the score the runs ranked with), with the
    paired 95 % t interval, paired t and Wilcoxon p, and what the interval allows: "above 0" / "below 0"
    (it excludes 0) or "inconclusive" (it contains 0). "How to Train Your Super-Net" states each
    factor's direction, so a verdict reads against the direction the docs name for the factor."""

    lines = ["| level - baseline | pairs (seeds) | metric | baseline | level | difference [95 % CI] | paired t p | "
             "Wilcoxon p | interval |", "|---|---|---|---|---|---|---|---|---|"]
    effects = factor_effects(records)
    if not effects:
        return "\n".join(lines + ["| (one level only) | - | - | - | - | - | - | - | - |"])
    for e in effects:
        decimals = 2 if e.metric == "ground_truth" else 3
        ci = f"{e.mean:+.{decimals}f}" + (f" [{e.low:+.{decimals}f}, {e.high:+.{decimals}f}]"
                                          if math.isfinite(e.low) else "")
        lines.append(f"| {e.level} - {e.baseline} | {e.n} | {METRICS[e.metric]} | {_f(e.baseline_mean, decimals)} | "
                     f"{_f(e.level_mean, decimals)} | {ci} | {_p(e.p_t)} | {_p(e.p_wilcoxon)} | {e.verdict} |")
    return "\n".join(lines)


def score_study_table(records: Records) -> str:
    """Accuracy vs loss as the shared-weight score, per group, on the final ranking epoch; and the
    ties in each score (distinct values among the ranked architectures)."""
    lines = ["| strategy | seeds | metric | by accuracy | by loss | loss - accuracy [95 % CI] | paired t p | "
             "Wilcoxon p | distinct scores of K: accuracy / loss |",
             "|---|---|---|---|---|---|---|---|---|"]
    for label, trials in records.groups().items():
        distinct = " / ".join(
            f"{np.median(v):.0f}" if v else "-" for v in
            ([final_epoch(t).get("distinct_accuracy") for t in trials if final_epoch(t).get("distinct_accuracy")],
             [final_epoch(t).get("distinct_loss") for t in trials if final_epoch(t).get("distinct_loss")]))
        k = next((final_epoch(t).get("architectures") for t in trials if final_epoch(t)), None)
        for metric, name in (("kendall_tau", "Kendall tau"), ("sparse_kendall_tau", "sparse Kendall tau")):
            acc, loss = paired_scores(trials, metric)
            if not acc:
                continue
            diff = paired_difference(acc, loss)
            ci = f"{diff['mean']:+.3f}" + (f" [{diff['low']:+.3f}, {diff['high']:+.3f}]"
                                           if math.isfinite(diff["low"]) else "")
            lines.append(f"| {label} | {len(acc)} | {name} | {_f(float(np.mean(acc)), 3)} | "
                         f"{_f(float(np.mean(loss)), 3)} | {ci} | {_p(diff['p_t'])} | {_p(diff['p_wilcoxon'])} | "
                         f"{distinct} (K = {k}) |")
    return "\n".join(lines)


def sparse_variants_table(records: Records) -> str:
    """The final ranking epoch's sparse Kendall tau in every variant, recomputed from the records."""
    from lightning_nas.metrics import SPARSE_VARIANTS

    lines = ["| strategy | seeds | " + " | ".join(f"sparse Kendall tau ({v})" for v in SPARSE_VARIANTS) + " |",
             "|---|---|" + "---|" * len(SPARSE_VARIANTS)]
    for label, trials in records.groups().items():
        cells = []
        for variant in SPARSE_VARIANTS:
            values = []
            for t in trials:
                final = t.get("ranking", {}).get("final") or {}
                truth, acc = final.get("ground_truth"), final.get("supernet_accuracy")
                if truth and acc and None not in truth and None not in acc:
                    values.append(sparse_kendall_tau(_goodness(records, truth), acc,
                                                     t["ranking"].get("threshold", 0.1), variant=variant))
            cells.append(_mean_ci_text(values, 3, KENDALL_RANGE))
        lines.append(f"| {label} | {len(trials)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def tie_break_spread(truth: list[float], scores: list[float], threshold: float, draws: int = 20,
                     seed: int = 0) -> float:
    """Standard deviation of the authors' sparse Kendall tau over ``draws`` random orders of the
    architectures: the authors' pairing breaks score ties by listing order, so this is how much of
    the value the ties alone decide (0 without score ties)."""
    rng = np.random.default_rng(seed)
    t, s = np.asarray(truth, dtype=float), np.asarray(scores, dtype=float)
    if len(np.unique(s)) == len(s):
        return 0.0
    values = []
    for _ in range(draws):
        order = rng.permutation(len(t))
        values.append(sparse_kendall_tau(t[order], s[order], threshold, variant="authors"))
    return float(np.std(values))


def tie_sensitivity_table(records: Records) -> str:
    """Per group: how many distinct scores the final ranking had, and how much the authors' sparse
    Kendall tau moves when only the order of tied scores changes, for either score."""
    lines = ["| strategy | seeds | images per architecture | distinct scores of K, median: accuracy / loss | "
             "sd of sparse Kendall tau over tie orders, mean: accuracy / loss |", "|---|---|---|---|---|"]
    for label, trials in records.groups().items():
        spreads: dict[str, list[float]] = {"supernet_accuracy": [], "supernet_loss": []}
        counts: dict[str, list[int]] = {"supernet_accuracy": [], "supernet_loss": []}
        for t in trials:
            final = t.get("ranking", {}).get("final") or {}
            truth = final.get("ground_truth")
            for key in spreads:
                scores = final.get(key)
                if not truth or not scores or None in truth or None in scores:
                    continue
                oriented = scores if key == "supernet_accuracy" else [-v for v in scores]
                spreads[key].append(tie_break_spread(_goodness(records, truth), oriented,
                                                     t["ranking"].get("threshold", 0.1)))
                counts[key].append(len(set(scores)))
        k = next((final_epoch(t).get("architectures") for t in trials if final_epoch(t)), None)
        images = next((t["ranking"].get("images_per_architecture") for t in trials
                       if t.get("ranking", {}).get("images_per_architecture")), None)
        distinct = " / ".join(f"{np.median(v):.0f}" if v else "-" for v in counts.values())
        spread = " / ".join(_f(float(np.mean(v)), 3) if v else "-" for v in spreads.values())
        lines.append(f"| {label} | {len(trials)} | {images if images else '-'} | {distinct} (K = {k}) | {spread} |")
    return "\n".join(lines)


def trials_table(records: Records) -> str:
    """Every trial: its answer, rank, regret, exact p(beat random), fragility (top ties, weight margin)."""
    lines = ["| strategy | seed | answer's ground truth | rank | regret | p(beat random) | tied at the top | "
             "smallest top-2 weight margin | final Kendall / sparse Kendall tau |",
             "|---|---|---|---|---|---|---|---|---|"]
    for label, trials in records.groups().items():
        for t in trials:
            a = t["answer"]
            last = own_score_agreement(t)  # by the score the run ranked with (accuracy or loss)
            margin = (a.get("margins") or {}).get("min")
            lines.append(f"| {label} | {t.get('seed')} | {_f(a.get('ground_truth'), 2)} | {a.get('rank', '-')} | "
                         f"{_f(a.get('regret'), 2)} | {_f(a.get('p_beat_random'), 3)} | "
                         f"{a.get('top_ties') if a.get('top_ties') is not None else '-'} | {_f(margin, 3)} | "
                         f"{_f(last.get('kendall_tau'), 3)} / {_f(last.get('sparse_kendall_tau'), 3)} |")
    return "\n".join(lines)


def headline_table(records: Records) -> str:
    """A single run's (or each trial's) published numbers: the final ranking epoch's correlations,
    the answer's rank and ground truth, and the environment that makes them bit-identical."""
    from lightning_nas.run_record import cpu_kind_key

    lines = ["| run | epochs | score | Kendall tau | sparse Kendall tau | answer's rank | answer's ground truth | "
             "P(answer > random draw) | torch / CPU kind / threads |", "|---|---|---|---|---|---|---|---|---|"]
    size = (records.experiment.get("benchmark") or {}).get("size")
    for trials in records.groups().values():
        for t in trials:
            last = final_epoch(t)
            agreement = own_score_agreement(t)
            env = t.get("environment") or {}
            lines.append(f"| {t['trial']} | {last.get('epoch', '-')} | {t.get('ranking', {}).get('score', '-')} | "
                         f"{_f(agreement.get('kendall_tau'), 3)} | "
                         f"{_f(agreement.get('sparse_kendall_tau'), 3)} | {t['answer'].get('rank', '-')} of {size} | "
                         f"{_f(t['answer'].get('ground_truth'), 2)} | {_f(t['answer'].get('p_beat_random'), 3)} | "
                         f"{env.get('torch')} / {cpu_kind_key(env.get('cpu')) or 'not recorded'} / "
                         f"{env.get('threads')} |")
    return "\n".join(lines)


def environment_table(records: Records) -> str:
    """The builds, CPU kinds, thread counts and commits the trials ran with (what bit-identity needs)."""
    from lightning_nas.run_record import cpu_kind_key

    seen: dict[tuple, int] = {}
    for t in records.trials:
        e = t.get("environment") or {}
        key = (e.get("torch"), e.get("lightning"), e.get("python"), cpu_kind_key(e.get("cpu")) or "not recorded",
               e.get("threads"), (e.get("commit") or "?")[:10] + (" (dirty)" if e.get("dirty") else ""))
        seen[key] = seen.get(key, 0) + 1
    lines = ["| trials | torch | lightning | python | CPU kind | threads | commit |", "|---|---|---|---|---|---|---|"]
    for key, count in sorted(seen.items(), key=lambda kv: [str(x) for x in kv[0]]):
        lines.append(f"| {count} | " + " | ".join(str(x) for x in key) + " |")
    return "\n".join(lines)


def anytime_table(records: Records) -> str:
    """Final test regret per method of the anytime trajectories (``results/anytime.py``)."""
    from lightning_nas.results.anytime import anytime_table as table

    return table(records)


def tuned_table(records: Records) -> str:
    """Tuned one-shot runs against their defaults and the discrete optimisers (``results/tuned.py``)."""
    from lightning_nas.results.tuned import tuned_table as table

    return table(records)


TABLES: dict[str, Callable[[Records], str]] = {
    "comparison": comparison_table,
    "power": power_table,
    "random_policy": random_policy_table,
    "score_study": score_study_table,
    "factor": factor_table,
    "sparse_variants": sparse_variants_table,
    "tie_sensitivity": tie_sensitivity_table,
    "trials": trials_table,
    "environment": environment_table,
    "headline": headline_table,
    "anytime": anytime_table,
    "tuned": tuned_table,
}
