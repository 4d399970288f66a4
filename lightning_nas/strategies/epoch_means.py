"""Epoch means of training-time values that survive a mid-epoch resume.

Lightning does not checkpoint the running sums behind ``self.log(..., on_epoch=True)``: after a
resume an epoch mean would cover only the batches since the resume. Strategies therefore add
training values here (``SearchStrategy.log_train``); the sums are part of every checkpoint, and
the means are logged once at the end of the epoch, reduced over DDP processes.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import torch


class EpochMeans:
    """Weighted running means by name, in float64, with an explicit checkpointable state."""

    def __init__(self) -> None:
        self._sums: dict[str, list[float]] = {}  # name -> [sum of value * weight, sum of weight]
        #: the epoch the sums belong to (a checkpoint taken on an epoch's last batch restores sums
        #: of an epoch whose end hooks already ran or will not run again: they must not leak)
        self.epoch: int | None = None

    def start(self, epoch: int) -> None:
        """Begin collecting for ``epoch``: sums restored from another epoch are dropped."""
        if self.epoch != epoch:
            self._sums.clear()
            self.epoch = epoch

    def update(self, name: str, value: float, weight: float = 1.0) -> None:
        entry = self._sums.setdefault(name, [0.0, 0.0])
        entry[0] += float(value) * float(weight)
        entry[1] += float(weight)

    def names(self) -> list[str]:
        return list(self._sums)

    def compute(self, reduce_sum: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> dict[str, float]:
        """The means; ``reduce_sum`` sums the (value, weight) pairs over processes first (DDP)."""
        if not self._sums:
            return {}
        names = sorted(self._sums)
        totals = torch.tensor([self._sums[n] for n in names], dtype=torch.float64)
        if reduce_sum is not None:
            totals = reduce_sum(totals)
        return {n: float(s / w) if w else float("nan") for n, (s, w) in zip(names, totals.tolist())}

    def summed(self, reduce_sum: Optional[Callable[[torch.Tensor], torch.Tensor]]) -> "EpochMeans":
        """These sums added over processes (``reduce_sum``): what a checkpoint keeps, since only
        rank 0 writes it."""
        total = EpochMeans()
        total.epoch = self.epoch
        names = sorted(self._sums)
        if names:
            values = torch.tensor([self._sums[n] for n in names], dtype=torch.float64)
            values = reduce_sum(values) if reduce_sum is not None else values
            total._sums = {n: [float(s), float(w)] for n, (s, w) in zip(names, values.tolist())}
        return total

    def reset(self) -> None:
        self._sums.clear()

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "sums": {name: list(entry) for name, entry in self._sums.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = state.get("epoch")
        self._sums = {name: [float(s), float(w)] for name, (s, w) in state.get("sums", {}).items()}
