"""Epoch means of training-time values that survive a mid-epoch resume.

Lightning does not checkpoint the running sums behind ``self.log(..., on_epoch=True)``: after a
resume an epoch mean would cover only the batches since the resume. Strategies therefore add
training values here (``SearchStrategy.log_train``); the sums are part of every checkpoint, and
the means are logged once at the end of the epoch, reduced over DDP processes. Values stay on
their device while the epoch runs (no host synchronisation in the training step); they are read
only when a checkpoint is written and at the end of the epoch.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import torch

Reduce = Optional[Callable[[torch.Tensor], torch.Tensor]]


class EpochMeans:
    """Weighted running means by name (sums in float64), with an explicit checkpointable state."""

    def __init__(self) -> None:
        #: name -> [sum of value * weight (a float64 tensor, or a float once restored), sum of weight]
        self._sums: dict[str, list[Any]] = {}
        #: the epoch the sums belong to (a checkpoint taken on an epoch's last batch restores sums
        #: of an epoch whose end hooks already ran or will not run again: they must not leak)
        self.epoch: int | None = None

    def start(self, epoch: int) -> None:
        """Begin collecting for ``epoch``: sums restored from another epoch are dropped."""
        if self.epoch != epoch:
            self._sums.clear()
            self.epoch = epoch

    def update(self, name: str, value: torch.Tensor | float, weight: float = 1.0) -> None:
        """Add ``value`` with ``weight`` (a batch size); a tensor is accumulated where it lives."""
        term = value.detach().double() * weight if isinstance(value, torch.Tensor) else float(value) * weight
        entry = self._sums.setdefault(name, [0.0, 0.0])
        entry[0] = entry[0] + term
        entry[1] += float(weight)

    def names(self) -> list[str]:
        return list(self._sums)

    def _totals(self, reduce_sum: Reduce) -> tuple[list[str], list[tuple[float, float]]]:
        """Names and (sum, weight) pairs, summed over processes by ``reduce_sum`` (DDP) if given."""
        names = sorted(self._sums)
        totals = torch.tensor([[float(self._sums[n][0]), self._sums[n][1]] for n in names], dtype=torch.float64)
        if reduce_sum is not None and names:
            totals = reduce_sum(totals)
        return names, [tuple(row) for row in totals.tolist()]

    def compute(self, reduce_sum: Reduce = None) -> dict[str, float]:
        """The means; ``reduce_sum`` sums the (value, weight) pairs over processes first (DDP)."""
        names, totals = self._totals(reduce_sum)
        return {n: s / w if w else float("nan") for n, (s, w) in zip(names, totals, strict=True)}

    def summed(self, reduce_sum: Reduce) -> "EpochMeans":
        """These sums added over processes (``reduce_sum``): what a checkpoint keeps, since only
        rank 0 writes it."""
        total = EpochMeans()
        total.epoch = self.epoch
        names, totals = self._totals(reduce_sum)
        total._sums = {n: [s, w] for n, (s, w) in zip(names, totals, strict=True)}
        return total

    def reset(self) -> None:
        self._sums.clear()

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "sums": {name: [float(s), float(w)] for name, (s, w) in self._sums.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = state.get("epoch")
        self._sums = {name: [float(s), float(w)] for name, (s, w) in state.get("sums", {}).items()}
