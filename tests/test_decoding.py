"""The per-epoch decoding callback: regret and ground truth of each epoch's derived architecture."""
from __future__ import annotations

import csv
import math

import pytest
from pytorch_lightning import Trainer

from callbacks import ArchitectureDecoding
from conftest import run_train
from lightning_nas.benchmarks import TableBenchmark
from lightning_nas.data import ImageDataModule
from lightning_nas.spaces.nb201 import NB201Architecture
from lightning_nas.strategies import SPOS

ARCHS = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "|avg_pool_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|nor_conv_1x1~2|",
    "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|",
]
BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"


class StubBenchmark(TableBenchmark):
    """Four architectures; the third derived one (ARCHS[2]) is missing on purpose."""

    metric = "stub_accuracy"

    def table(self) -> dict[str, float]:
        return {BEST: 94.5, ARCHS[0]: 93.25, ARCHS[1]: 80.0, "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|": 10.0}


class ScriptedStrategy(SPOS):
    """SPOS whose derived architecture follows a script, one per epoch."""

    def derive_architecture(self):
        return NB201Architecture.from_string(ARCHS[self.current_epoch % len(ARCHS)])


def test_decoding_records_regret_and_ground_truth_every_epoch(tmp_path):
    benchmark = StubBenchmark()
    decoding = ArchitectureDecoding(num_batches=1, benchmark=benchmark)
    strategy = ScriptedStrategy(network={"C": 4, "N": 1, "affine": False}, num_classes=10, in_channels=1)
    data = ImageDataModule(dataset="digits", data_dir=str(tmp_path), image_size=8, batch_size=32, val_split=0.2)
    trainer = Trainer(max_epochs=3, limit_train_batches=2, limit_val_batches=0, accelerator="cpu", devices=1,
                      callbacks=[decoding], default_root_dir=str(tmp_path), logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, deterministic=True)
    trainer.fit(strategy, datamodule=data)

    with (tmp_path / "decoding.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    assert [r["architecture"] for r in rows] == ARCHS
    assert float(rows[0]["test_regret"]) == pytest.approx(94.5 - 93.25)
    assert float(rows[0]["ground_truth"]) == pytest.approx(93.25)
    assert float(rows[1]["test_regret"]) == pytest.approx(94.5 - 80.0)
    assert rows[2]["test_regret"] == rows[2]["ground_truth"] == ""  # not in the table: no made-up number
    for row in rows:
        assert 0.0 <= float(row["one_shot_accuracy"]) <= 100.0 and row["bn_mode"] == "batch"
    regrets = decoding.regrets
    assert regrets[:2] == pytest.approx([1.25, 14.5]) and math.isnan(regrets[2])
    # the last epoch that had a regret logged it
    assert "decoding/one_shot_accuracy" in trainer.callback_metrics
    assert float(trainer.callback_metrics["decoding/test_regret"]) == pytest.approx(14.5)


def test_decoding_skips_strategies_without_a_derived_architecture(tiny_recipe, tmp_path):
    args = ["--recipe", tiny_recipe, "--trainer.limit_train_batches", "2", "--ranking.num_architectures", "0",
            "--selection.num_architectures", "0", "--run_dir", tmp_path / "spos"]
    assert run_train(args, tmp_path) == 0
    assert not (tmp_path / "spos" / "decoding.csv").exists()
