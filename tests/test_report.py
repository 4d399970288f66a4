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
        writer.writerows([f"arch{i}", f"{s:.4f}", t] for i, (s, t) in enumerate(zip(score_k, truth_k)))
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
                          "RandomSampling bn_mode=batch",
                          "RandomSampling bn_mode=running"]
    spos_running = rows["SPOS bn_mode=running"]
    # the random policy with the same factor values is the baseline (Yu et al., Table 1)
    assert spos_running["baseline"] == "RandomSampling bn_mode=running"
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
    assert math.isnan(float(rows["RandomSampling bn_mode=batch"]["ground_truth_welch_p"]))

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
