"""Final selection: the search phase's answer, judged against ground truth.

After training, N candidate architectures (1000 by default; from the strategy's policy, e.g.
the ENAS controller, else uniform) are scored on a few validation batches with the shared
weights; the best ``top_k`` (10) are re-scored on the whole validation split and the best of
those is selected (the two-stage procedure of Li & Talwalkar 2019, Sec. 4). Where the strategy
derives an architecture itself (DARTS family), that one is reported too. The result, with the
ground truth, the rank in the table and the comparison with random search (Yu et al. Eq. 1), is
written to ``RUN_DIR/selection.json``.
"""
from __future__ import annotations

from typing import Any, Hashable, Literal, Optional

from pytorch_lightning import Callback, LightningModule, Trainer
from pytorch_lightning.utilities import rank_zero_info

from callbacks.common import calibration_inputs, evaluation_batches, progress, run_dir, sample_architectures
from lightning_nas.benchmarks import Benchmark
from lightning_nas.io import atomic_write_json
from lightning_nas.metrics import p_beat_random, p_random_as_good
from lightning_nas.nn.batchnorm import BNMode, BNModeName
from lightning_nas.scoring import score_architectures


class FinalSelection(Callback):
    """Args:
        num_architectures: N candidates (0 disables the callback).
        num_batches: validation batches for the first, cheap scoring of every candidate.
        top_k: candidates re-scored on the whole validation split.
        bn_mode, calibration_batches: as in ``WeightSharingRanking``.
        searches: n in p = 1 - (1 - r/r_max)^n, the number of searches whose best is compared.
        score: what the two stages select by: highest validation ``accuracy`` or lowest ``loss``
            (language models: the loss is the log-perplexity).
        benchmark: the ground truth (linked from the recipe's ``benchmark``).
    """

    def __init__(self, num_architectures: int = 1000, num_batches: int = 2, top_k: int = 10, bn_mode: BNModeName = "batch",
                 calibration_batches: int = 5, searches: int = 1, score: Literal["accuracy", "loss"] = "accuracy",
                 benchmark: Optional[Benchmark] = None) -> None:
        if score not in ("accuracy", "loss"):
            raise ValueError(f"selection.score must be 'accuracy' or 'loss', got {score!r}")
        self.bn_mode = BNMode(bn_mode).value
        self.score = score
        self.num_architectures, self.num_batches, self.top_k = num_architectures, num_batches, top_k
        self.calibration_batches, self.searches, self.benchmark = calibration_batches, searches, benchmark
        self.result: Optional[dict[str, Any]] = None

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.num_architectures <= 0 or not trainer.is_global_zero:
            return
        self.result = self.select(trainer, pl_module)
        path = atomic_write_json(run_dir(trainer) / "selection.json", self.result)
        rank_zero_info(f"[lightning_nas] selected {self.result['architecture']} -> {path}")

    def select(self, trainer: Trainer, strategy: LightningModule) -> dict[str, Any]:
        archs, source = sample_architectures(strategy, self.benchmark, self.num_architectures, "selection",
                                             from_policy=True)
        device = strategy.device
        calibration = calibration_inputs(trainer, device, self.bn_mode, self.calibration_batches)
        quick = score_architectures(strategy, archs, evaluation_batches(trainer, device, self.num_batches),
                                    self.bn_mode, calibration,
                                    progress=progress(trainer, f"selection: {len(archs)} candidates"))
        goodness = (lambda s: s.accuracy) if self.score == "accuracy" else (lambda s: -s.loss)  # higher is better
        order = sorted(range(len(archs)), key=lambda i: -goodness(quick[i]))[:self.top_k]
        finalists = [archs[i] for i in order]
        full = score_architectures(strategy, finalists, evaluation_batches(trainer, device, None), self.bn_mode,
                                   calibration, progress=progress(trainer, f"selection: top {len(finalists)}"))
        best = max(range(len(finalists)), key=lambda i: goodness(full[i]))
        result: dict[str, Any] = {
            "architecture": str(finalists[best]),
            "supernet_val_accuracy": full[best].accuracy,
            "supernet_val_loss": full[best].loss,
            "score": self.score,
            "bn_mode": self.bn_mode,
            "candidates": len(archs),
            "candidate_source": source,
            **self._ground_truth(finalists[best]),
            "finalists": [{"architecture": str(a), "quick_accuracy": quick[i].accuracy, "val_accuracy": f.accuracy,
                           "quick_loss": quick[i].loss, "val_loss": f.loss, **self._ground_truth(a)}
                          for a, i, f in zip(finalists, order, full)],
        }
        derived = strategy.derive_architecture()
        if derived is not None:
            result["derived"] = {"architecture": str(derived), **self._ground_truth(derived)}
        return result

    def _ground_truth(self, arch: Hashable) -> dict[str, Any]:
        if self.benchmark is None or arch not in self.benchmark:
            return {}
        rank, size = self.benchmark.rank(arch), len(self.benchmark)
        return {"ground_truth": self.benchmark.query(arch), "regret": self.benchmark.regret(arch), "rank": rank,
                "table_size": size, "searches": self.searches,
                "p_beat_random": p_beat_random(rank, size, self.searches),
                "p_random_as_good": p_random_as_good(rank, size, self.searches)}
