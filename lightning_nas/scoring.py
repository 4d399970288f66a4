"""Scoring one architecture with shared weights, in a chosen batch-norm mode.

Used by the ranking and selection callbacks and by strategies that pick among sampled
architectures (ENAS). No gradients, no side effects on the super-net: its training flags and
batch-norm statistics are the same afterwards.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Hashable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from lightning_nas.nn.batchnorm import BNMode, batch_statistics, recalibrated_statistics, running_statistics

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class Score:
    accuracy: float  # percent
    loss: float
    samples: int


@torch.no_grad()
def score(module: nn.Module, forward: Callable[[torch.Tensor], torch.Tensor], batches: Iterable[Batch],
          bn_mode: BNMode | str = BNMode.BATCH, calibration: Sequence[torch.Tensor] = ()) -> Score:
    """Accuracy and mean cross-entropy of ``forward`` over ``batches``.

    ``module`` owns the batch-norm layers (the super-net); ``forward`` runs one architecture.
    ``calibration`` are input batches for ``BNMode.RECALIBRATE``.
    """
    bn_mode = BNMode(bn_mode)
    was_training = module.training
    module.eval()
    try:
        if bn_mode is BNMode.BATCH:
            context = batch_statistics(module)
        elif bn_mode is BNMode.RUNNING:
            context = running_statistics(module)
        else:
            if not calibration:
                raise ValueError("bn_mode 'recalibrate' needs calibration batches")
            context = recalibrated_statistics(module, forward, calibration)
        with context:
            return _evaluate(forward, batches)
    finally:
        module.train(was_training)


def _evaluate(forward: Callable[[torch.Tensor], torch.Tensor], batches: Iterable[Batch]) -> Score:
    accuracy: MulticlassAccuracy | None = None
    total_loss, count = 0.0, 0
    for x, y in batches:
        logits = forward(x)
        if accuracy is None:
            accuracy = MulticlassAccuracy(num_classes=logits.shape[-1], average="micro").to(logits.device)
        accuracy.update(logits, y)
        total_loss += float(F.cross_entropy(logits, y, reduction="sum"))
        count += y.numel()
    if accuracy is None:
        raise ValueError("cannot score an architecture on zero batches")
    return Score(accuracy=100.0 * float(accuracy.compute()), loss=total_loss / count, samples=count)


def score_architectures(strategy: Any, archs: Sequence[Hashable], batches: Sequence[Batch],
                        bn_mode: BNMode | str = BNMode.BATCH, calibration: Sequence[torch.Tensor] = (),
                        progress: str | None = None) -> list[Score]:
    """``score`` for each architecture of ``strategy`` (a SearchStrategy) on the same batches."""
    from tqdm.auto import tqdm

    results = []
    for arch in tqdm(archs, desc=progress, disable=progress is None, leave=False, dynamic_ncols=True):
        results.append(score(strategy.supernet, strategy.architecture_forward(arch), batches, bn_mode, calibration))
    return results
