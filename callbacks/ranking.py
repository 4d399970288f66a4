"""Weight-sharing ranking: how well do the shared weights order architectures?

A fixed, seeded set of K architectures (200, as in "How to Train Your Super-Net") is scored with
the shared weights every ``every_n_epochs`` on M validation batches in the chosen batch-norm mode.
With a ground-truth table it logs Kendall tau, sparse Kendall tau, Spearman rho, the mean
super-net accuracy ("super-net accuracy", a poor proxy) and the mean ground truth of the top-3
architectures by super-net score, and writes the per-epoch table to
``RUN_DIR/ranking/epoch_XXX.csv``.
"""
from __future__ import annotations

import math
from typing import Literal, Optional

from pytorch_lightning import Callback, LightningModule, Trainer
from pytorch_lightning.utilities import rank_zero_info

from callbacks.common import (GroundTruth, calibration_inputs, check_count, evaluation_batches, progress, run_dir,
                              sample_architectures, sample_subspaces)
from lightning_nas.benchmarks import Benchmark
from lightning_nas.errors import RecipeError
from lightning_nas.io import atomic_write_csv
from lightning_nas.metrics import ranking_agreement
from lightning_nas.nn.batchnorm import BNMode, BNModeName
from lightning_nas.run.notices import notice
from lightning_nas.scoring import score_architectures
from lightning_nas.spaces import SearchSpace
from lightning_nas.strategies.base import FixedArchitecture


class WeightSharingRanking(Callback):
    """Args:
        num_architectures: K, the fixed set scored every time (0 disables the callback; a K above
            the number of architectures available ranks all of them and says so in a notice).
        every_n_epochs: scoring period.
        num_batches: M validation batches per architecture (None: the whole split).
        bn_mode: ``batch`` (default), ``running`` or ``recalibrate``.
        calibration_batches: training batches for ``recalibrate``.
        sparse_threshold: ground-truth differences below this are ties (sparse Kendall tau).
        top_k: how many top-scored architectures the logged ground truth averages.
        score: what orders architectures by their shared weights: validation ``accuracy`` (higher is
            better) or ``loss`` (lower is better; language models, where the loss is the
            log-perplexity). Correlations compare this score with the ground truth oriented so
            that both are "higher is better" (a lower-is-better benchmark such as perplexity is
            negated), so a positive Kendall tau always means agreement.
        benchmark: the ground truth (linked from the recipe's ``benchmark``).
        per_subspace: also rank within each sub-space of fixed widths (Yu et al., "How to Train Your
            Super-Net", Sec. 4.5 and Table 3, "baseline-v2": up to ``num_architectures`` architectures
            per sub-space, ``callbacks.common.sample_subspaces``; NB101: the output's in-degree) and log
            the mean over sub-spaces as ``subspace_sparse_kendall_tau`` (and ``subspace_kendall_tau``,
            ``subspace_spearman``, ``subspace_count``), writing ``RUN_DIR/ranking/subspace_epoch_XXX.csv``.
            Off by default; refused in one line on a space without such sub-spaces.
    """

    def __init__(self, num_architectures: int = 200, every_n_epochs: int = 1, num_batches: Optional[int] = 5,
                 bn_mode: BNModeName = "batch", calibration_batches: int = 5, sparse_threshold: float = 0.1,
                 top_k: int = 3, score: Literal["accuracy", "loss"] = "accuracy",
                 benchmark: Optional[Benchmark] = None, per_subspace: bool = False) -> None:
        if score not in ("accuracy", "loss"):
            raise RecipeError(f"ranking.score must be 'accuracy' or 'loss', got {score!r}")
        check_count("ranking.num_architectures", num_architectures)
        check_count("ranking.every_n_epochs", every_n_epochs, minimum=1)
        check_count("ranking.num_batches", num_batches, minimum=1, allow_none=True)
        check_count("ranking.calibration_batches", calibration_batches, minimum=1)
        check_count("ranking.top_k", top_k, minimum=1)
        if not sparse_threshold >= 0:
            raise RecipeError(f"ranking.sparse_threshold must be >= 0, got {sparse_threshold!r}")
        self.bn_mode = BNMode(bn_mode).value
        self.score = score
        self.num_architectures, self.every_n_epochs, self.num_batches = num_architectures, every_n_epochs, num_batches
        self.calibration_batches, self.sparse_threshold, self.top_k = calibration_batches, sparse_threshold, top_k
        self.benchmark = benchmark
        self.per_subspace = per_subspace
        self._subspaces: Optional[dict] = None  # drawn once (seeded, so a resumed run draws the same)
        self._announced = False

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        space = getattr(pl_module, "space", None)
        if self.per_subspace and self.num_architectures and space is not None \
                and type(space).subspace is SearchSpace.subspace:
            raise RecipeError(f"ranking.per_subspace ranks within sub-spaces of fixed operation widths, which the "
                              f"{space.name} space does not have (nb101 does); set ranking.per_subspace: false")

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.num_architectures == 0 or (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        if not trainer.is_global_zero:
            return
        if not getattr(pl_module, "trains", True):  # the random baseline: no shared weights to rank with
            if not self._announced:
                rank_zero_info(f"[lightning_nas] no weight-sharing ranking: {type(pl_module).__name__} trains nothing")
                self._announced = True
            return
        metrics = self.evaluate(trainer, pl_module)
        pl_module.log_dict({f"ranking/{k}": v for k, v in metrics.items()}, rank_zero_only=True)

    def evaluate(self, trainer: Trainer, strategy: LightningModule) -> dict[str, float]:
        archs, source = sample_architectures(strategy, self.benchmark, self.num_architectures, "ranking")
        batches = evaluation_batches(trainer, strategy.device, self.num_batches)
        calibration = calibration_inputs(trainer, strategy.device, self.bn_mode, self.calibration_batches)
        results = score_architectures(strategy, archs, batches, self.bn_mode, calibration,
                                      progress=progress(trainer, f"ranking {len(archs)} archs"))
        accuracies = [s.accuracy for s in results]
        scores = [s.goodness(self.score) for s in results]  # higher is better
        ground_truth = GroundTruth(self.benchmark, strategy.space)
        known = self.benchmark is not None and all(ground_truth.known(a) for a in archs)
        truth = [ground_truth.value(a) for a in archs] if known else [float("nan")] * len(archs)
        epoch = trainer.current_epoch
        atomic_write_csv(run_dir(trainer) / "ranking" / f"epoch_{epoch:03d}.csv",
                         ["architecture", "supernet_accuracy", "ground_truth", "supernet_loss"],
                         ([str(a), f"{s:.4f}", t, f"{r.loss:.4f}"]
                          for a, s, t, r in zip(archs, accuracies, truth, results, strict=True)))
        metrics = {"supernet_accuracy": sum(accuracies) / len(accuracies),
                   "supernet_loss": sum(r.loss for r in results) / len(results)}
        if known and len(archs) >= 2:  # a correlation needs ground truth for at least two architectures
            metrics.update(ranking_agreement(truth, scores, self.sparse_threshold,
                                             higher_is_better=self.benchmark.higher_is_better))
            best = sorted(range(len(archs)), key=lambda i: -scores[i])[:self.top_k]
            metrics[f"top{self.top_k}_ground_truth"] = sum(truth[i] for i in best) / len(best)
        if self.per_subspace:
            metrics.update(self._evaluate_subspaces(trainer, strategy, batches, calibration))
        if not self._announced:  # the same seeded set every time: say once where it came from
            rank_zero_info(f"[lightning_nas] ranking {len(archs)} architectures drawn from {source}")
            if len(archs) < self.num_architectures and not isinstance(strategy, FixedArchitecture):
                notice(f"ranking.num_architectures={self.num_architectures}, but only {len(archs)} architectures "
                       f"exist in {source}: ranking all {len(archs)}")
            if known and self.top_k > len(archs) >= 2:
                notice(f"ranking.top_k={self.top_k}, but only {len(archs)} architectures are ranked: "
                       f"top{self.top_k}_ground_truth averages all {len(archs)}")
            self._announced = True
        return metrics

    def _evaluate_subspaces(self, trainer: Trainer, strategy: LightningModule, batches, calibration) -> dict[str, float]:
        """Yu et al.'s baseline-v2: the ranking agreement within each sub-space, averaged over sub-spaces."""
        if isinstance(strategy, FixedArchitecture):  # one path: no sub-space has anything else to rank
            return {}
        if self._subspaces is None:
            self._subspaces = sample_subspaces(strategy, self.benchmark, self.num_architectures, "ranking-subspaces")
        archs = [(g, a) for g, group in self._subspaces.items() for a in group]
        results = score_architectures(strategy, [a for _, a in archs], batches, self.bn_mode, calibration,
                                      progress=progress(trainer, f"ranking {len(archs)} archs by sub-space"))
        ground_truth = GroundTruth(self.benchmark, strategy.space)
        known = self.benchmark is not None and all(ground_truth.known(a) for _, a in archs)
        truth = [ground_truth.value(a) for _, a in archs] if known else [float("nan")] * len(archs)
        atomic_write_csv(run_dir(trainer) / "ranking" / f"subspace_epoch_{trainer.current_epoch:03d}.csv",
                         ["subspace", "architecture", "supernet_accuracy", "ground_truth", "supernet_loss"],
                         ([g, str(a), f"{r.accuracy:.4f}", t, f"{r.loss:.4f}"]
                          for (g, a), t, r in zip(archs, truth, results, strict=True)))
        if not known:
            return {}
        per_group: dict[str, list[float]] = {}
        for g in self._subspaces:
            rows = [i for i, (h, _) in enumerate(archs) if h == g]
            agreement = ranking_agreement([truth[i] for i in rows], [results[i].goodness(self.score) for i in rows],
                                          self.sparse_threshold, higher_is_better=self.benchmark.higher_is_better)
            for name, value in agreement.items():
                if math.isfinite(value):
                    per_group.setdefault(name, []).append(value)
        metrics = {f"subspace_{name}": sum(v) / len(v) for name, v in per_group.items()}
        if per_group:
            metrics["subspace_count"] = float(max(len(v) for v in per_group.values()))
        return metrics
