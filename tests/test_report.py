"""The experiment report: aggregation math against numpy/scipy, tables, plots and W&B (offline)."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from lightning_nas import report

# ground truth of the selected architecture per seed (3 seeds) for each group
TRUTH = {("SPOS", "batch"): [90.1, 91.3, 89.7], ("SPOS", "running"): [85.0, 88.2, 86.1],
         ("RandomSampling", "batch"): [88.0, 88.9, 87.1], ("RandomSampling", "running"): [87.5, 86.0, 88.4]}
TAU = {("SPOS", "batch"): [0.61, 0.55, 0.58], ("SPOS", "running"): [0.12, 0.20, 0.05],
       ("RandomSampling", "batch"): [0.30, 0.35, 0.32], ("RandomSampling", "running"): [0.10, 0.15, 0.12]}


def make_run(root: Path, strategy: str, bn_mode: str, seed: int, wandb: bool = False) -> Path:
    """A run directory as train.py + the runner write it, with known final numbers."""
    name = f"strategy={strategy}__bn_mode={bn_mode}__seed{seed}"
    run = root / name
    (run / "ranking").mkdir(parents=True)
    loggers = "[csv, wandb]" if wandb else "[csv]"
    (run / "config.yaml").write_text(
        f"seed_everything: {seed}\nmodel:\n  class_path: lightning_nas.strategies.{strategy}\n"
        f"loggers: {loggers}\nwandb_project: report-test\nranking:\n  sparse_threshold: 0.1\n")
    (run / "trial.json").write_text(json.dumps(
        {"name": name, "seed": seed, "factors": {"strategy": strategy, "bn_mode": bn_mode}, "status": "finished"}))
    truth, tau = TRUTH[strategy, bn_mode][seed], TAU[strategy, bn_mode][seed]
    (run / "selection.json").write_text(json.dumps(
        {"architecture": "a", "supernet_val_accuracy": 50.0 + seed, "ground_truth": truth, "rank": 10 + seed,
         "table_size": 100, "p_beat_random": 1 - (10 + seed) / 100}))
    with (run / "metrics.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["epoch", "step", "ranking/kendall_tau", "ranking/sparse_kendall_tau",
                         "ranking/supernet_accuracy", "train/loss_step"])
        writer.writerow([0, 1, "", "", "", 2.3])
        writer.writerow([0, 1, tau / 2, tau / 3, 30.0, ""])
        writer.writerow([1, 3, tau + 0.01, tau, 40.0 + seed, ""])
    rng = np.random.default_rng(seed)
    truth_k = rng.uniform(80, 94, 12)
    score_k = truth_k * 0.5 + rng.normal(0, 2, 12)
    with (run / "ranking" / "epoch_001.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["architecture", "supernet_accuracy", "ground_truth"])
        writer.writerows([f"arch{i}", f"{s:.4f}", t] for i, (s, t) in enumerate(zip(score_k, truth_k, strict=True)))
    with (run / "decoding.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["epoch", "architecture", "test_regret", "ground_truth", "one_shot_accuracy", "bn_mode"])
        writer.writerows([e, "a", 5.0 - e + seed * 0.1, 90.0, 40.0, bn_mode] for e in range(3))
    return run


@pytest.fixture
def experiment(tmp_path: Path) -> Path:
    root = tmp_path / "exp"
    for strategy, bn_mode in TRUTH:
        for seed in range(3):
            make_run(root, strategy, bn_mode, seed)
    (root / "experiment.json").write_text(json.dumps({"grid": [
        {"label": "strategy", "keys": ["model.class_path"], "values": ["SPOS", "RandomSampling"]},
        {"label": "bn_mode", "keys": ["ranking.bn_mode"], "values": ["batch", "running"]}]}))
    return root


def test_summarize_and_welch_match_numpy_and_scipy():
    a, b = [90.1, 91.3, 89.7], [85.0, 88.2, 86.1, 84.2]
    n, mean, std = report.summarize(a + [float("nan")])
    assert n == 3 and mean == pytest.approx(np.mean(a)) and std == pytest.approx(np.std(a, ddof=1))
    t, p = report.welch(a, b)
    expected = stats.ttest_ind(a, b, equal_var=False)
    assert (t, p) == pytest.approx((expected.statistic, expected.pvalue))
    # Welch by hand: t = (m1 - m2) / sqrt(s1^2/n1 + s2^2/n2), Welch-Satterthwaite degrees of freedom
    v1, v2 = np.var(a, ddof=1) / 3, np.var(b, ddof=1) / 4
    t_hand = (np.mean(a) - np.mean(b)) / math.sqrt(v1 + v2)
    df = (v1 + v2) ** 2 / (v1 ** 2 / 2 + v2 ** 2 / 3)
    assert t == pytest.approx(t_hand) and p == pytest.approx(2 * stats.t.sf(abs(t_hand), df))
    # pooled-variance Student's t would give another p: make sure that is not what we compute
    assert p != pytest.approx(stats.ttest_ind(a, b, equal_var=True).pvalue)
    assert all(math.isnan(x) for x in report.welch([1.0], b))
    assert report.summarize([5.0])[2] != report.summarize([5.0])[2]  # NaN std for one seed
    assert report.mean_std([1.0, 3.0], 2) == "2.00 ± 1.41"


def test_report_tables_against_known_numbers(experiment: Path):
    summary = report.build_report(experiment, use_wandb=False)
    out = summary.parent
    rows = {row["group"]: row for row in csv.DictReader((out / "summary.csv").open())}
    assert list(rows) == ["SPOS bn_mode=batch", "SPOS bn_mode=running",
                          "Random search bn_mode=batch",
                          "Random search bn_mode=running"]
    spos_running = rows["SPOS bn_mode=running"]
    # the random policy with the same factor values is the baseline (Yu et al., Table 1)
    assert spos_running["baseline"] == "Random search bn_mode=running"
    truth, base = TRUTH["SPOS", "running"], TRUTH["RandomSampling", "running"]
    assert float(spos_running["ground_truth_mean"]) == pytest.approx(np.mean(truth))
    assert float(spos_running["ground_truth_std"]) == pytest.approx(np.std(truth, ddof=1))
    assert float(spos_running["ground_truth_welch_p"]) == pytest.approx(
        stats.ttest_ind(truth, base, equal_var=False).pvalue)
    # the last ranking epoch's taus, the selection's rank and p(beat random)
    assert float(spos_running["sparse_kendall_tau_mean"]) == pytest.approx(np.mean(TAU["SPOS", "running"]))
    assert float(spos_running["kendall_tau_mean"]) == pytest.approx(np.mean(TAU["SPOS", "running"]) + 0.01)
    assert float(spos_running["supernet_accuracy_mean"]) == pytest.approx(41.0)
    assert float(spos_running["rank_mean"]) == pytest.approx(11.0)
    assert float(spos_running["p_beat_random_mean"]) == pytest.approx(0.89)
    assert math.isnan(float(rows["Random search bn_mode=batch"]["ground_truth_welch_p"]))

    text = summary.read_text()
    assert f"| SPOS bn_mode=batch | 3 | {np.mean(TRUTH['SPOS', 'batch']):.2f} ± " \
           f"{np.std(TRUTH['SPOS', 'batch'], ddof=1):.2f} |" in text
    p = stats.ttest_ind(TRUTH["SPOS", "batch"], TRUTH["RandomSampling", "batch"], equal_var=False).pvalue
    assert f"| {p:.3f} |" in text
    trials = list(csv.DictReader((out / "trials.csv").open()))
    assert len(trials) == 12 and {t["status"] for t in trials} == {"finished"}
    for name in ("supernet_vs_truth.png", "ranking_over_epochs.png", "regret_over_epochs.png", "factor_influence.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, name
        assert f"]({name})" in text


def test_baseline_option_and_unfinished_runs(experiment: Path, tmp_path: Path):
    broken = experiment / "unfinished"
    broken.mkdir()
    (broken / "config.yaml").write_text("model:\n  class_path: lightning_nas.strategies.SPOS\n")
    (broken / "trial.json").write_text(json.dumps({"name": "unfinished", "seed": 9, "factors": {}, "status": "failed"}))
    summary = report.build_report(experiment, out=tmp_path / "r", baseline="SPOS bn_mode=batch",
                                  use_wandb=False)
    rows = {row["group"]: row for row in csv.DictReader((summary.parent / "summary.csv").open())}
    assert rows["SPOS bn_mode=running"]["baseline"] == "SPOS bn_mode=batch"
    assert "left out: unfinished" in summary.read_text()
    with pytest.raises(report.ReportError, match="--baseline"):
        report.build_report(experiment, out=tmp_path / "r", baseline="nothing", use_wandb=False)


def test_factor_effects_are_differences_of_marginal_means(experiment: Path):
    runs = report.find_runs(experiment)
    order = report.factor_order(experiment, runs)
    groups = report.group_runs(runs, order)
    effects = dict((label, (d, se)) for label, d, se in report.factor_effects(groups, order, "ground_truth"))
    d, se = effects["SPOS: bn_mode running vs batch"]
    a, b = TRUTH["SPOS", "running"], TRUTH["SPOS", "batch"]
    assert d == pytest.approx(np.mean(a) - np.mean(b))
    assert se == pytest.approx(math.sqrt(np.var(a, ddof=1) / 3 + np.var(b, ddof=1) / 3))


def test_no_ground_truth_falls_back_and_says_so(tmp_path: Path):
    root = tmp_path / "exp"
    for bn_mode in ("batch", "running"):
        for seed in range(2):
            run = make_run(root, "SPOS", bn_mode, seed)
            selection = json.loads((run / "selection.json").read_text())
            for key in ("ground_truth", "rank", "table_size", "p_beat_random"):
                selection.pop(key)
            (run / "selection.json").write_text(json.dumps(selection))
            (run / "decoding.csv").unlink()
            (run / "ranking" / "epoch_001.csv").write_text("architecture,supernet_accuracy,ground_truth\na,1.0,nan\nb,2.0,nan\n")
    summary = report.build_report(root, use_wandb=False)
    text = summary.read_text()
    assert "No ground truth" in text and "selected arch. super-net val acc" in text
    assert not (summary.parent / "supernet_vs_truth.png").exists()
    assert (summary.parent / "factor_influence.png").stat().st_size > 5000


def test_cli_errors_are_one_line(tmp_path: Path, capsys):
    assert report.main([str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.strip() == f"report: error: EXPERIMENT_DIR {tmp_path / 'missing'}: not a directory"
    assert report.main([str(tmp_path)]) == 2
    assert "no finished run directories" in capsys.readouterr().err


def test_plots_go_to_wandb_offline(tmp_path: Path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    root = tmp_path / "exp"
    for bn_mode in ("batch", "running"):
        for seed in range(2):
            make_run(root, "SPOS", bn_mode, seed, wandb=True)
    summary = report.build_report(root)  # the runs used wandb: logged without being asked
    runs = list((summary.parent / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    images = list(runs[0].glob("files/media/images/report/*.png"))
    assert len(images) == 4, sorted(p.name for p in runs[0].rglob("*"))


# paired design: the same 6 seeds under two conditions
PAIR_A = {0: 0.51, 1: 0.48, 2: 0.55, 3: 0.47, 4: 0.52, 5: 0.50}
PAIR_B = {0: 0.47, 1: 0.47, 2: 0.50, 3: 0.44, 4: 0.50, 5: 0.44}


def test_paired_tests_match_scipy_on_known_numbers():
    from lightning_nas.report.statistics import paired

    a, b = list(PAIR_A.values()), list(PAIR_B.values())
    result = paired(PAIR_A, dict(reversed(list(PAIR_B.items()))))  # matched by seed, not by position
    assert result.n == 6
    assert result.t == pytest.approx(stats.ttest_rel(a, b).statistic)
    assert result.p_t == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert result.p_wilcoxon == pytest.approx(stats.wilcoxon(a, b).pvalue)
    diff = np.subtract(a, b)  # 0.04, 0.01, 0.05, 0.03, 0.02, 0.06
    assert result.mean_difference == pytest.approx(0.035)
    assert result.d_z == pytest.approx(0.035 / np.std(diff, ddof=1))
    # by hand: t = mean / (sd / sqrt(n)) with n - 1 degrees of freedom; the exact Wilcoxon p of six
    # positive differences is 2 / 2^6
    assert result.t == pytest.approx(0.035 / (np.std(diff, ddof=1) / math.sqrt(6)))
    assert result.p_wilcoxon == pytest.approx(2 / 64)
    # unpaired on the same numbers the difference is not significant: pairing is what resolves it
    assert report.welch(a, b)[1] > 0.05 > result.p_t
    # seeds missing on one side are left out of the pairs
    assert paired(PAIR_A, {0: 0.47, 1: 0.47, 9: 1.0}).n == 2


def test_effect_sizes_and_seeds_needed():
    from lightning_nas.report.statistics import cohens_d, power, seeds_needed

    a, b = [90.1, 91.3, 89.7], [85.0, 88.2, 86.1, 84.2]
    pooled = ((3 - 1) * np.var(a, ddof=1) + (4 - 1) * np.var(b, ddof=1)) / (3 + 4 - 2)
    assert cohens_d(a, b) == pytest.approx((np.mean(a) - np.mean(b)) / math.sqrt(pooled))
    # Cohen (1988) Table 2.4.1: d = 0.5 and 0.8 need 64 and 26 per group (alpha 0.05 two-sided, power 0.8);
    # G*Power: d_z = 0.5 needs 34 pairs, d_z = 0.2 199
    assert seeds_needed(0.5, paired=False) == 64 and seeds_needed(0.8, paired=False) == 26
    assert seeds_needed(0.5, paired=True) == 34 and seeds_needed(-0.2, paired=True) == 199
    assert power(0.5, 34, paired=True) >= 0.8 > power(0.5, 33, paired=True)
    assert seeds_needed(0.0, paired=True) == math.inf and math.isnan(seeds_needed(float("nan"), paired=True))
    # a large effect: scipy's noncentral t returns nan for the far tail, which must not make the power nan
    assert 0.99 < power(2.8, 12, paired=True) <= 1.0 and power(-0.5, 34, paired=True) == power(0.5, 34, paired=True)


def test_report_without_matplotlib_writes_tables_and_exits_0(experiment: Path, monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    assert report.main([str(experiment), "--wandb", "no"]) == 0
    out = experiment / "report"
    assert (out / "summary.csv").is_file() and (out / "trials.csv").is_file()
    text = (out / "summary.md").read_text()
    assert "matplotlib is not installed" in text and "pip install" in text
    assert not list(out.glob("*.png")) and "![" not in text
    assert "matplotlib is not installed" in capsys.readouterr().out


def test_report_paired_section_p_over_runs_and_vector_plots(experiment: Path):
    summary = report.build_report(experiment, use_wandb=False)
    out = summary.parent
    rows = {row["group"]: row for row in csv.DictReader((out / "summary.csv").open())}
    row = rows["SPOS bn_mode=running"]
    truth, base = TRUTH["SPOS", "running"], TRUTH["RandomSampling", "running"]
    assert float(row["ground_truth_paired_p"]) == pytest.approx(stats.ttest_rel(truth, base).pvalue)
    assert float(row["ground_truth_paired_n"]) == 3
    # Yu et al.: r = the best rank over the group's 3 runs (10, 11, 12 -> 10), n = 3
    assert float(row["best_rank_over_runs"]) == 10
    assert float(row["p_beat_random_over_runs"]) == pytest.approx((1 - 10 / 100) ** 3)
    text = summary.read_text()
    assert "0.729 (r = 10, n = 3)" in text and "p(beat random), per run (n=1)" in text
    assert "no evidence" in text and "Wilcoxon" in text
    for name in ("supernet_vs_truth", "ranking_over_epochs", "regret_over_epochs", "factor_influence"):
        assert (out / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"
        assert b"<svg" in (out / f"{name}.svg").read_bytes()[:2000]


def test_headline_is_the_strategys_own_answer(tmp_path: Path):
    """selection.json's top level is the strategy's own answer; shared_weight_selection is reported
    separately and labelled."""
    root = tmp_path / "exp"
    for seed in range(2):
        run = make_run(root, "SPOS", "batch", seed)
        selection = json.loads((run / "selection.json").read_text())
        selection.update(ground_truth=80.0 + seed, rank=40 + seed, answer_source="decoded alpha (argmax per edge)",
                         shared_weight_selection={"architecture": "b", "ground_truth": 90.0 + seed, "rank": 3 + seed})
        (run / "selection.json").write_text(json.dumps(selection))
    summary = report.build_report(root, use_wandb=False)
    row = next(csv.DictReader((summary.parent / "summary.csv").open()))
    assert float(row["ground_truth_mean"]) == pytest.approx(80.5) and float(row["rank_mean"]) == 40.5
    assert float(row["sw_ground_truth_mean"]) == pytest.approx(90.5) and float(row["sw_rank_mean"]) == 3.5
    assert row["answer_source"] == "decoded alpha (argmax per edge)"
    text = summary.read_text()
    assert "shared-weight selection: ground truth" in text and "decoded alpha (argmax per edge)" in text
    assert "each strategy's own answer" in text


def test_group_labels_leave_out_factors_that_only_name_the_strategy():
    """``--grid model=recipes/x/darts.yaml,...`` (one recipe file per strategy): the group reads as the
    display name of its recipe (``results/names.py``), a class-path value adds nothing."""
    from lightning_nas.report.runs import Group

    def label(strategy: str, value: str) -> str:
        return Group(strategy, (("model", value),)).label

    assert label("DARTS", "recipes/s/darts.yaml") == "DARTS (1st order)"
    assert label("RandomSampling", "recipes/s/random_sampling.yaml") == "Random search"
    assert label("SPOS", "lightning_nas.strategies.SPOS") == "SPOS"
    assert label("DARTS", "recipes/s/darts_2nd.yaml") == "DARTS (2nd order)"
    assert label("PCDARTS", "recipes/s/pcdarts.yaml") == "PC-DARTS"
    assert label("SPOS", "0.1") == "SPOS model=0.1"


def test_report_compares_with_the_exact_random_policy_of_a_complete_table():
    """With a complete table the report tests each group's answers against the exact random policy
    (metrics/random_baseline.py) instead of leaning on sampled random runs."""
    from lightning_nas.metrics.random_baseline import RandomPolicy, exact_rank_test, one_sample_t
    from lightning_nas.report.runs import Group, Run
    from lightning_nas.report.tables import exact_random_section

    policy = RandomPolicy.from_table([float(v) for v in range(10)])
    runs = [Run(Path(f"r{s}"), f"r{s}", s, "SPOS", {}, "finished", final={"ground_truth": v})
            for s, v in enumerate([9.0, 9.0, 8.0])]
    lines = exact_random_section([Group("SPOS", (), runs)], policy)
    row = lines[-1]
    rank, t = exact_rank_test([9.0, 9.0, 8.0], policy), one_sample_t([9.0, 9.0, 8.0], policy)
    assert row.startswith("| SPOS | 3 | 0.92 |")
    assert f"| {rank.p:.3f} |" in row and f"{t.mean_difference:+.2f}" in row
    assert "mean 4.50" in "\n".join(lines)
