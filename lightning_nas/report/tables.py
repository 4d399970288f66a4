"""The report's CSV and Markdown tables."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

from lightning_nas.report.common import METRICS, NAN, TESTED
from lightning_nas.report.runs import Group, Run
from lightning_nas.report.statistics import (ALPHA, POWER, cohens_d, fmt, fmt_p, mean_std, paired, seeds_needed,
                                             summarize, verdict, welch)


def write_tables(groups: list[Group], base: dict[str, Optional[Group]], runs: list[Run], out: Path,
                 factor_names: list[str]) -> list[list[str]]:
    """trials.csv and summary.csv; returns the summary rows (for Markdown and W&B)."""
    from lightning_nas.io import atomic_write_csv

    atomic_write_csv(out / "trials.csv", ["trial", "strategy", *factor_names, "seed", "status", "answer_source",
                                          *METRICS],
                     ([r.name, r.strategy, *(r.factors.get(k, "") for k in factor_names), r.seed, r.status,
                       r.answer_source, *(r.final.get(m, NAN) for m in METRICS)] for r in runs))
    header = ["group", "strategy", *factor_names, "n", "baseline", "answer_source"]
    for metric in METRICS:
        header += [f"{metric}_mean", f"{metric}_std"]
    header += ["best_rank_over_runs", "p_beat_random_over_runs"]
    for metric in TESTED:
        header += [f"{metric}_welch_t", f"{metric}_welch_p", f"{metric}_cohens_d", f"{metric}_seeds_needed_welch",
                   f"{metric}_paired_n", f"{metric}_paired_mean_difference", f"{metric}_paired_t",
                   f"{metric}_paired_p", f"{metric}_wilcoxon_p", f"{metric}_d_z", f"{metric}_seeds_needed_paired"]
    rows = []
    for g in groups:
        b = base[g.label]
        row = [g.label, g.strategy, *(v for _, v in g.factors), str(len(g.runs)), b.label if b else "",
               g.answer_source]
        for metric in METRICS:
            _, mean, std = summarize(g.values(metric))
            row += [repr(mean), repr(std)]
        ranks = [v for v in g.values("rank") if math.isfinite(v)]
        row += [repr(min(ranks) if ranks else NAN), repr(g.p_beat_random_over_runs())]
        for metric in TESTED:
            if b is None:
                row += [repr(NAN)] * 11
                continue
            t, p = welch(g.values(metric), b.values(metric))
            d = cohens_d(g.values(metric), b.values(metric))
            pair = paired(g.by_seed(metric), b.by_seed(metric))
            row += [repr(t), repr(p), repr(d), repr(seeds_needed(d, paired=False)), str(pair.n),
                    repr(pair.mean_difference), repr(pair.t), repr(pair.p_t), repr(pair.p_wilcoxon), repr(pair.d_z),
                    repr(pair.seeds_needed)]
        rows.append(row)
    atomic_write_csv(out / "summary.csv", header, rows)
    return [header, *rows]


def _needed(n: float) -> str:
    if n is None or math.isnan(n):
        return "-"
    return "> 100,000" if math.isinf(n) else f"{int(n)}"


def markdown(experiment_dir: Path, groups: list[Group], base: dict[str, Optional[Group]], runs: list[Run],
             skipped: list[Run], plots: dict[str, str], notes: list[str], policy=None) -> str:
    metrics = [m for m in METRICS if any(math.isfinite(v) for g in groups for v in g.values(m))]
    sources = any(g.answer_source for g in groups)
    lines = [f"# Experiment report: {experiment_dir}", "",
             f"{len(runs)} finished trials in {len(groups)} groups"
             + (f"; {len(skipped)} not finished and left out: {', '.join(r.name for r in skipped)}" if skipped else "")
             + ". Mean ± sample standard deviation over seeds.", ""]
    if sources:
        lines += ["*Ground truth, rank and p(beat random) are of each strategy's own answer* (column "
                  "\"answer\": decoded architecture, controller choice, shared-weight selection or random draw). "
                  + ("Columns named \"shared-weight selection\" are the pick by shared-weight score on the same "
                     "super-net, a separate result." if "sw_ground_truth" in metrics else ""), ""]
    lines += ["| group | n | " + " | ".join(METRICS[m][0] for m in metrics)
              + (" | p(beat random), Yu et al. (best rank r over n runs) |" if "rank" in metrics else " |")
              + (" answer |" if sources else ""),
              "|---|---|" + "---|" * len(metrics) + ("---|" if "rank" in metrics else "") + ("---|" if sources else "")]
    for g in groups:
        cells = [mean_std(g.values(m), METRICS[m][1]) for m in metrics]
        if "rank" in metrics:
            ranks = [v for v in g.values("rank") if math.isfinite(v)]
            p = g.p_beat_random_over_runs()
            ok = ranks and math.isfinite(p)
            cells.append(f"{fmt(p, 3)} (r = {int(min(ranks))}, n = {len(ranks)})" if ok else "-")
        if sources:
            cells.append(g.answer_source or "-")
        lines.append(f"| {g.label} | {len(g.runs)} | " + " | ".join(cells) + " |")
    final = "ground_truth" if "ground_truth" in metrics else "selected_supernet_accuracy"
    tested = [m for m in (final, "sparse_kendall_tau", "supernet_accuracy") if m in metrics]
    if tested:
        lines += ["", "### Against the baseline, Table 1 layout of Yu et al. (ICLR 2020)", "",
                  "Welch's t-test (unequal variances) of each group against its baseline (the random policy "
                  "when the experiment has one): two-sided p-values.", "",
                  "| group | baseline | " + " | ".join(f"{METRICS[m][0]} | p" for m in tested) + " |",
                  "|---|---|" + "---|---|" * len(tested)]
        for g in groups:
            b = base[g.label]
            cells = []
            for m in tested:
                p = welch(g.values(m), b.values(m))[1] if b else NAN
                cells += [mean_std(g.values(m), METRICS[m][1]), fmt_p(p) if b else "baseline"]
            lines.append(f"| {g.label} | {b.label if b else '-'} | " + " | ".join(cells) + " |")
        lines += _effects(groups, base, tested)
    if policy is not None and "ground_truth" in metrics:
        lines += exact_random_section(groups, policy, runs[0].unit != "" if runs else True)
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    for title, name in plots.items():
        lines += ["", f"## {title}", "", f"![{title}]({name})"]
    return "\n".join(lines) + "\n"


def exact_random_section(groups: list[Group], policy, higher_is_better: bool = True) -> list[str]:
    """Each group's answers against the exact random policy of a complete table
    (``metrics/random_baseline.py``: exact rank test, one-sample t-test against the exact mean)."""
    from lightning_nas.metrics.random_baseline import exact_rank_test, one_sample_t

    sign = 1.0 if higher_is_better else -1.0
    lines = ["", "### Against the exact random policy (complete table)", "",
             f"One random draw from the {policy.size}-architecture table: mean {sign * policy.mean():.2f}, "
             f"sd {policy.sd():.2f}, expected regret {policy.expected_regret():.2f}. A = P(answer > draw) + "
             "P(tie)/2 over the group's answers, with the exact two-sided p of H0 \"the answers are random "
             "draws\" (null distribution by convolution); beside it the one-sample t-test of the ground truth "
             "against the exact mean (approximate for few seeds).", "",
             "| group | n | A | exact rank test p | mean difference [95 % CI] | t-test p |", "|---|---|---|---|---|---|"]
    for g in groups:
        values = [sign * v for v in g.values("ground_truth") if math.isfinite(v)]
        if not values:
            continue
        rank, t = exact_rank_test(values, policy), one_sample_t(values, policy)
        ci = (f"{sign * t.mean_difference:+.2f} [{sign * t.ci_low:+.2f}, {sign * t.ci_high:+.2f}]"
              if math.isfinite(t.ci_low) else fmt(sign * t.mean_difference, 2))
        lines.append(f"| {g.label} | {rank.n} | {fmt(rank.superiority, 2)} | {fmt_p(rank.p)} | {ci} | {fmt_p(t.p)} |")
    return lines


def _effects(groups: list[Group], base: dict[str, Optional[Group]], tested: list[str]) -> list[str]:
    """Differences from the baseline with paired tests, effect sizes and the seeds they would need."""
    lines = ["", "### Differences from the baseline: paired and unpaired tests, effect sizes", "",
             "Conditions of one seed rank the same candidate architectures and see the same batches, so the "
             "per-seed differences are paired: paired t-test and Wilcoxon signed-rank test over the common "
             "seeds, effect size d_z = mean difference / sd of the differences; beside them Welch's t-test and "
             f"Cohen's d (pooled sd). \"seeds needed\": seeds (pairs) for a two-sided test at alpha = {ALPHA} "
             f"to detect a difference of the observed size with power {POWER} (noncentral t; Cohen 1988, ch. 2). "
             f"A verdict of \"no evidence\" means p >= {ALPHA} in the paired t-test (Welch where unpaired): "
             "the observed difference is compatible with seed noise.", "",
             "| group | baseline | metric | difference | pairs | d_z | paired t p | Wilcoxon p | Welch p | "
             "Cohen's d | verdict | seeds needed (paired / per group) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for g in groups:
        b = base[g.label]
        if b is None:
            continue
        for m in tested:
            decimals = METRICS[m][1]
            pair = paired(g.by_seed(m), b.by_seed(m))
            _, p_welch = welch(g.values(m), b.values(m))
            d = cohens_d(g.values(m), b.values(m))
            _, ma, _ = summarize(g.values(m))
            _, mb, _ = summarize(b.values(m))
            unpaired = pair.n < 2
            difference = pair.mean_difference if not unpaired else ma - mb
            if not math.isfinite(difference):
                continue
            word = verdict(p_welch if unpaired else pair.p_t)
            lines.append(f"| {g.label} | {b.label} | {METRICS[m][0]} | {difference:+.{decimals}f} | {pair.n} | "
                         f"{fmt(pair.d_z, 2)} | {fmt_p(pair.p_t)} | {fmt_p(pair.p_wilcoxon)} | {fmt_p(p_welch)} | "
                         f"{fmt(d, 2)} | {word} | {_needed(pair.seeds_needed)} / "
                         f"{_needed(seeds_needed(d, paired=False))} |")
    return lines
