"""Final selection: the search's answer, judged against ground truth.

The answer is the algorithm's own (``SearchStrategy.answer``): the decoded relaxation for the
DARTS family (``derive_architecture``), the fixed architecture of stand-alone training and of the
random-sampling baseline, and for RandomNAS/SPOS, FairNAS and ENAS the shared-weight selection:
N candidate architectures (1000 by default; from the strategy's policy, e.g. the ENAS
controller, else uniform) scored on a few validation batches with the shared weights, the best
``top_k`` (10) re-scored on the whole validation split and the best of those selected (the
two-stage procedure of Li & Talwalkar 2019, Sec. 4; ENAS Sec. 2.2). Where the answer is a
derivation, the shared-weight selection on the same super-net is still reported, separately and
labelled as such (``shared_weight_selection``). The result, with the ground truth, the rank in the
table and the comparison with random search (Yu et al. Eq. 1), is written to
``RUN_DIR/selection.json``.
"""
from __future__ import annotations

from typing import Any, Hashable, Literal, Optional

from pytorch_lightning import Callback, LightningModule, Trainer
from pytorch_lightning.utilities import rank_zero_info

from callbacks.common import (GroundTruth, calibration_inputs, check_count, evaluation_batches, progress, run_dir,
                              sample_architectures)
from lightning_nas.benchmarks import Benchmark
from lightning_nas.errors import RecipeError
from lightning_nas.io import atomic_write_json
from lightning_nas.metrics import p_beat_random, p_random_as_good
from lightning_nas.nn.batchnorm import BNMode, BNModeName
from lightning_nas.run.notices import notice
from lightning_nas.scoring import score_architectures
from lightning_nas.strategies.base import FixedArchitecture


class FinalSelection(Callback):
    """Args:
        num_architectures: N candidates of the shared-weight selection (0 disables it; strategies
            whose answer is a derivation still report that; above the architectures available: all of
            them, said in a notice).
        num_batches: validation batches for the first, cheap scoring of every candidate.
        top_k: candidates re-scored on the whole validation split (above the candidates: all of them,
            said in a notice).
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
            raise RecipeError(f"selection.score must be 'accuracy' or 'loss', got {score!r}")
        check_count("selection.num_architectures", num_architectures)
        check_count("selection.num_batches", num_batches, minimum=1)
        check_count("selection.top_k", top_k, minimum=1)
        check_count("selection.calibration_batches", calibration_batches, minimum=1)
        check_count("selection.searches", searches, minimum=1)
        self.bn_mode = BNMode(bn_mode).value
        self.score = score
        self.num_architectures, self.num_batches, self.top_k = num_architectures, num_batches, top_k
        self.calibration_batches, self.searches, self.benchmark = calibration_batches, searches, benchmark
        self.result: Optional[dict[str, Any]] = None

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero or (self.num_architectures == 0 and pl_module.answer == "selection"):
            return
        self.result = self.select(trainer, pl_module)
        path = atomic_write_json(run_dir(trainer) / "selection.json", self.result)
        rank_zero_info(f"[lightning_nas] selected {self.result['architecture']} -> {path}")

    def select(self, trainer: Trainer, strategy: LightningModule) -> dict[str, Any]:
        """The strategy's own answer (top level) and, where that is a derivation, the shared-weight
        selection on the same super-net (``shared_weight_selection``)."""
        name = type(strategy).__name__
        truth = GroundTruth(self.benchmark, strategy.space)
        if strategy.answer == "selection":
            result = self.shared_weight_selection(trainer, strategy, truth)
            result["answer_source"] = f"{name}: shared-weight selection among {result['candidate_source']}"
            return result
        answer = strategy.derive_architecture()
        device = strategy.device
        calibration = calibration_inputs(trainer, device, self.bn_mode, self.calibration_batches)
        (full,) = score_architectures(strategy, [answer], evaluation_batches(trainer, device, None), self.bn_mode,
                                      calibration)
        fixed = isinstance(strategy, FixedArchitecture)
        result: dict[str, Any] = {
            "architecture": str(answer),
            "answer_source": f"{name}: {'its fixed architecture' if fixed else 'decoded from its architecture weights'}",
            "supernet_val_accuracy": full.accuracy, "supernet_val_loss": full.loss,
            "score": self.score, "bn_mode": self.bn_mode, **self._ground_truth(truth, answer)}
        if not fixed and self.num_architectures > 0:
            result["shared_weight_selection"] = self.shared_weight_selection(trainer, strategy, truth)
        return result

    def shared_weight_selection(self, trainer: Trainer, strategy: LightningModule, truth: GroundTruth) -> dict[str, Any]:
        """Two-stage selection by shared-weight score (Li & Talwalkar 2019, Sec. 4)."""
        archs, source = sample_architectures(strategy, self.benchmark, self.num_architectures, "selection",
                                             from_policy=True)
        device = strategy.device
        calibration = calibration_inputs(trainer, device, self.bn_mode, self.calibration_batches)
        quick = score_architectures(strategy, archs, evaluation_batches(trainer, device, self.num_batches),
                                    self.bn_mode, calibration,
                                    progress=progress(trainer, f"selection: {len(archs)} candidates"))
        if len(archs) < self.num_architectures:
            notice(f"selection.num_architectures={self.num_architectures}, but only {len(archs)} architectures "
                   f"exist in {source}: scoring all {len(archs)}")
        if self.top_k > len(archs):
            notice(f"selection.top_k={self.top_k}, but there are only {len(archs)} candidates: re-scoring all "
                   f"{len(archs)} on the whole validation split")
        order = sorted(range(len(archs)), key=lambda i: -quick[i].goodness(self.score))[:self.top_k]
        finalists = [archs[i] for i in order]
        full = score_architectures(strategy, finalists, evaluation_batches(trainer, device, None), self.bn_mode,
                                   calibration, progress=progress(trainer, f"selection: top {len(finalists)}"))
        best = max(range(len(finalists)), key=lambda i: full[i].goodness(self.score))
        return {
            "architecture": str(finalists[best]),
            "supernet_val_accuracy": full[best].accuracy,
            "supernet_val_loss": full[best].loss,
            "score": self.score,
            "bn_mode": self.bn_mode,
            "candidates": len(archs),
            "candidate_source": source,
            **self._ground_truth(truth, finalists[best]),
            "finalists": [{"architecture": str(a), "quick_accuracy": quick[i].accuracy, "val_accuracy": f.accuracy,
                           "quick_loss": quick[i].loss, "val_loss": f.loss, **self._ground_truth(truth, a)}
                          for a, i, f in zip(finalists, order, full, strict=True)],
        }

    def _ground_truth(self, truth: GroundTruth, arch: Hashable) -> dict[str, Any]:
        summary = truth.summary(arch)
        if "rank" in summary:
            rank, size = summary["rank"], summary["table_size"]
            summary.update(searches=self.searches, p_beat_random=p_beat_random(rank, size, self.searches),
                           p_random_as_good=p_random_as_good(rank, size, self.searches))
        return summary
