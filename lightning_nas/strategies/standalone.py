"""Training one fixed architecture stand-alone (no weight sharing).

The ground truth of ``lightning_nas.tabulate``, the random-sampling baseline when no table exists,
and the final full-size ("proxyless") network trained with DDP all use this module. It is a
``SearchStrategy`` whose network holds a single path (the space's network built with ``arch``),
so the CLI, the data, the optimiser and the callbacks treat it like any other strategy.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lightning_nas.registry import STRATEGIES
from lightning_nas.strategies.base import FixedArchitecture


@STRATEGIES.register("standalone")
class Standalone(FixedArchitecture):
    """Args:
        architecture: the architecture's text form (e.g. an NB201 string).
        Everything else as ``SearchStrategy``; the NB201 benchmark trains with lr 0.1, nesterov
        momentum 0.9, weight decay 5e-4, cosine to 0 (Dong & Yang 2020, Sec. 2.3).
    """

    def __init__(self, architecture: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.architecture = self.space.parse(architecture)
        self.supernet = self.build_network(arch=self.architecture)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        self._evaluate(x, y, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        self._evaluate(x, y, "test")

    def _evaluate(self, x: torch.Tensor, y: torch.Tensor, prefix: str) -> None:
        logits = self(x, self.architecture)
        loss = nn.functional.cross_entropy(logits, y)
        acc = (logits.argmax(-1) == y).float().mean() * 100
        self.log(f"{prefix}/loss", loss, sync_dist=True, batch_size=len(y))
        self.log(f"{prefix}/accuracy", acc, sync_dist=True, batch_size=len(y), prog_bar=True)
