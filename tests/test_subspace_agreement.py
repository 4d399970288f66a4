"""Baseline-v2 of "How to Train Your Super-Net" (Sec. 4.5): ranking agreement within sub-spaces, as recorded."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from lightning_nas.metrics import ranking_agreement
from lightning_nas.results.extract import ranking_epochs
from lightning_nas.results.factors import _metric_value


def _write(path: Path, header: list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])


def test_subspace_agreement_is_the_mean_over_subspaces_of_their_own_agreement(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    groups = {"1": 12, "2": 9, "0": 1}  # a one-cell sub-space has no ranking and is left out
    rows, expected = [], []
    for group, size in groups.items():
        truth, loss = rng.uniform(40, 90, size), rng.uniform(0.5, 2.0, size)
        rows += [[group, f"a{group}{i}", "50.0", f"{t:.4f}", f"{v:.4f}"] for i, (t, v) in enumerate(zip(truth, loss, strict=True))]
        if size >= 2:
            expected.append(ranking_agreement([float(f"{t:.4f}") for t in truth], [-float(f"{v:.4f}") for v in loss],
                                              0.1)["sparse_kendall_tau"])
    run = tmp_path / "run"
    _write(run / "ranking" / "epoch_009.csv", ["architecture", "supernet_accuracy", "ground_truth", "supernet_loss"],
           [[r[1], r[2], r[3], r[4]] for r in rows])
    _write(run / "ranking" / "subspace_epoch_009.csv",
           ["subspace", "architecture", "supernet_accuracy", "ground_truth", "supernet_loss"], rows)
    epochs, _ = ranking_epochs(run, 0.1, True)
    within = epochs[-1]["subspaces"]
    assert within["subspaces"] == 2
    assert within["by_loss"]["sparse_kendall_tau"] == pytest.approx(np.mean(expected))
    # the pooled ranking is another number: the sub-space mean is not a copy of it
    assert within["by_loss"]["sparse_kendall_tau"] != pytest.approx(epochs[-1]["by_loss"]["sparse_kendall_tau"])
    trial = {"ranking": {"score": "loss", "epochs": epochs}}
    assert _metric_value(trial, "subspace_sparse_kendall_tau") == within["by_loss"]["sparse_kendall_tau"]
    assert _metric_value({"ranking": {"score": "loss", "epochs": [{"by_loss": {}}]}},
                         "subspace_sparse_kendall_tau") is None  # runs without per-sub-space ranking
