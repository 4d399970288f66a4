"""Scoring one architecture with shared weights, in a chosen batch-norm mode.

Used by the ranking and selection callbacks and by strategies that pick among sampled
architectures (ENAS). No gradients, no side effects on the super-net: its training flags and
batch-norm statistics are the same afterwards.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Iterable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lightning_nas.nn.batchnorm import BNMode, batch_statistics, recalibrated_statistics, running_statistics

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class Score:
    accuracy: float  # percent
    loss: float
    samples: int

    def goodness(self, by: str) -> float:
        """Higher is better: the accuracy, or the negated loss (a diverged, NaN loss ranks last)."""
        if by == "accuracy":
            return self.accuracy
        return -self.loss if math.isfinite(self.loss) else -math.inf


@torch.no_grad()
def score(module: nn.Module, forward: Callable[[torch.Tensor], torch.Tensor], batches: Iterable[Batch],
          bn_mode: BNMode | str = BNMode.BATCH, calibration: Sequence[torch.Tensor] = ()) -> Score:
    """Accuracy and mean cross-entropy of ``forward`` over ``batches``.

    ``module`` owns the batch-norm layers (the super-net); ``forward`` runs one architecture.
    ``calibration`` are input batches for ``BNMode.RECALIBRATE``. Batches marked ``stateful`` (the
    consecutive windows of a language-model stream, ``callbacks.common.EvaluationBatches``) are run
    with the hidden state carried from window to window, from zero, as AWD-LSTM evaluates.
    """
    bn_mode = BNMode(bn_mode)
    was_training = {m: m.training for m in module.modules()}  # per module: mixed flags come back as they were
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
        with context, _carried_state(module, getattr(batches, "stateful", False)):
            return _evaluate(forward, batches)
    finally:
        for m, training in was_training.items():
            m.training = training


@contextlib.contextmanager
def _carried_state(module: nn.Module, stateful: bool) -> Iterator[None]:
    """Carry a language model's hidden state across consecutive windows, from zero, and forget it
    afterwards (scoring leaves no state behind)."""
    if not stateful or not hasattr(module, "carrying"):
        yield
        return
    try:
        with module.carrying("score", reset=True):
            yield
    finally:
        module.reset_hidden("score")


def _evaluate(forward: Callable[[torch.Tensor], torch.Tensor], batches: Iterable[Batch]) -> Score:
    # Plain counting, not a torchmetrics Metric: a Metric's compute() all-gathers across DDP
    # processes, and callbacks score on rank 0 only (a collective on one rank hangs or corrupts);
    # it is also the cheaper hot path when thousands of architectures are scored.
    correct: torch.Tensor | None = None
    total_loss: torch.Tensor | None = None
    count = 0
    for x, y in batches:
        logits = forward(x)
        hits = (logits.argmax(-1) == y).sum()
        loss = F.cross_entropy(logits, y, reduction="sum")
        correct = hits if correct is None else correct + hits
        total_loss = loss.double() if total_loss is None else total_loss + loss.double()
        count += y.numel()
    if correct is None or total_loss is None:
        raise ValueError("cannot score an architecture on zero batches")
    return Score(accuracy=100.0 * int(correct) / count, loss=float(total_loss) / count, samples=count)


def score_architectures(strategy: Any, archs: Sequence[Hashable], batches: Sequence[Batch],
                        bn_mode: BNMode | str = BNMode.BATCH, calibration: Sequence[torch.Tensor] = (),
                        progress: str | None = None) -> list[Score]:
    """``score`` for each architecture of ``strategy`` (a SearchStrategy) on the same batches."""
    from tqdm.auto import tqdm

    from lightning_nas import signals

    results = []
    for arch in tqdm(archs, desc=progress, disable=True if progress is None else None, leave=False, dynamic_ncols=True):
        signals.check(progress or "scoring architectures")  # SIGTERM/SIGINT: stop between architectures
        results.append(score(strategy.supernet, strategy.architecture_forward(arch), batches, bn_mode, calibration))
    return results
