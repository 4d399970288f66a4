"""Per-epoch architecture decoding: where is the strategy's current discrete choice?

After every ``every_n_epochs`` training epochs the strategy's ``derive_architecture()`` (arg-max of
alpha for the DARTS family, the controller's greedy choice for ENAS; SPOS and FairNAS have none
and are skipped) is looked up in the benchmark and scored with the shared weights on the
validation split. Logs ``decoding/test_regret`` (best entry of the table minus this
architecture's, ``Benchmark.regret``; only with a table that holds it) and
``decoding/one_shot_accuracy``, and keeps the trajectory in ``RUN_DIR/decoding.csv`` - the
test-regret-over-epochs curves of NAS-Bench-1Shot1 (Zela et al. 2020, Fig. 3-5). For strategies
with normalised architecture weights (the DARTS family) each row also records how fragile the
arg-max is: ``min_margin``, the smallest margin between the two largest weights of a decision, and
``margins``, every decision's margin as JSON (``lightning_nas.metrics.margins``).
"""
from __future__ import annotations

import csv
import json
import math
from typing import Any, Hashable, Optional

import torch
from pytorch_lightning import Callback, LightningModule, Trainer

from callbacks.common import GroundTruth, calibration_inputs, check_count, evaluation_batches, run_dir
from lightning_nas.benchmarks import Benchmark
from lightning_nas.io import atomic_write_csv
from lightning_nas.metrics.margins import decision_margins
from lightning_nas.nn.batchnorm import BNMode, BNModeName
from lightning_nas.scoring import score

COLUMNS = ["epoch", "architecture", "test_regret", "ground_truth", "one_shot_accuracy", "bn_mode", "min_margin",
           "margins"]


class ArchitectureDecoding(Callback):
    """Args:
        every_n_epochs: decoding period (0 disables the callback).
        num_batches: validation batches for the one-shot score (None: the whole split).
        bn_mode: ``batch`` (default: batch statistics, see ``lightning_nas.nn.batchnorm``),
            ``running`` or ``recalibrate``; recorded in every row.
        calibration_batches: training batches for ``recalibrate``.
        benchmark: the ground truth (linked from the recipe's ``benchmark``).
    """

    def __init__(self, every_n_epochs: int = 1, num_batches: Optional[int] = None, bn_mode: BNModeName = "batch",
                 calibration_batches: int = 5, benchmark: Optional[Benchmark] = None) -> None:
        check_count("decoding.every_n_epochs", every_n_epochs)
        check_count("decoding.num_batches", num_batches, minimum=1, allow_none=True)
        check_count("decoding.calibration_batches", calibration_batches, minimum=1)
        self.every_n_epochs, self.num_batches = every_n_epochs, num_batches
        self.bn_mode = BNMode(bn_mode).value
        self.calibration_batches, self.benchmark = calibration_batches, benchmark
        self.history: list[dict[str, Any]] = []

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """A resumed run continues the trajectory of the epochs it already completed."""
        path = run_dir(trainer) / "decoding.csv"
        if self.history or not trainer.is_global_zero or not path.is_file():
            return
        with path.open(newline="") as handle:
            self.history = [row for row in csv.DictReader(handle) if int(row["epoch"]) < trainer.current_epoch]

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.every_n_epochs <= 0 or (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        if not trainer.is_global_zero:
            return
        arch = pl_module.derive_architecture()
        if arch is None:
            return
        row = self.decode(trainer, pl_module, arch)
        self.history.append(row)
        atomic_write_csv(run_dir(trainer) / "decoding.csv", COLUMNS,
                         ([r.get(c, "") for c in COLUMNS] for r in self.history))
        metrics = {"decoding/one_shot_accuracy": row["one_shot_accuracy"]}
        if row["test_regret"] != "":
            metrics["decoding/test_regret"] = row["test_regret"]
        pl_module.log_dict(metrics, rank_zero_only=True)

    def decode(self, trainer: Trainer, strategy: LightningModule, arch: Hashable) -> dict[str, Any]:
        device = strategy.device
        batches = evaluation_batches(trainer, device, self.num_batches)
        calibration = calibration_inputs(trainer, device, self.bn_mode, self.calibration_batches)
        one_shot = score(strategy.supernet, strategy.architecture_forward(arch), batches, self.bn_mode, calibration)
        row: dict[str, Any] = {"epoch": trainer.current_epoch, "architecture": str(arch), "test_regret": "",
                               "ground_truth": "", "one_shot_accuracy": one_shot.accuracy, "bn_mode": self.bn_mode}
        margins = self.margins(strategy)
        if margins:
            row["min_margin"] = min(margins.values())
            row["margins"] = json.dumps({k: round(v, 6) for k, v in margins.items()}, separators=(",", ":"))
        truth = GroundTruth(self.benchmark, strategy.space)
        if truth.known(arch):
            row["ground_truth"] = truth.value(arch)
            regret = truth.regret(arch)
            row["test_regret"] = "" if regret is None else regret
        return row

    @staticmethod
    def margins(strategy: LightningModule) -> dict[str, float]:
        """Top-two weight margin of every decision, where the strategy has normalised weights ({} else)."""
        normalised = getattr(strategy, "normalised_weights", None)
        groups = getattr(strategy, "groups", None)
        if normalised is None or groups is None:
            return {}
        with torch.no_grad():
            return decision_margins(groups, normalised())

    @property
    def regrets(self) -> list[float]:
        """The regret trajectory (NaN where the table lacks the architecture)."""
        return [float(r["test_regret"]) if r["test_regret"] != "" else math.nan for r in self.history]
