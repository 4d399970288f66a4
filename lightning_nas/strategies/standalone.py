"""Training one fixed architecture stand-alone (no weight sharing).

The ground truth of ``lightning_nas.tabulate``, the random-sampling baseline when no table exists,
and the final full-size ("proxyless") network trained with DDP all use this module. It is a
``SearchStrategy`` whose "super-net" holds a single path, so the CLI, the data, the optimiser
and the callbacks treat it like any other strategy.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lightning_nas.strategies.base import FixedArchitecture


class Standalone(FixedArchitecture):
    """Args:
        architecture: the architecture's text form (e.g. an NB201 string).
        Everything else as ``SearchStrategy``; the NB201 benchmark trains with lr 0.1, nesterov
        momentum 0.9, weight decay 5e-4, cosine to 0 (Dong & Yang 2020, Sec. 2.3).
    """

    def __init__(self, architecture: str, *args: Any, **kwargs: Any) -> None:
        self._architecture_text = architecture
        super().__init__(*args, **kwargs)

    def build_network(self, options: dict[str, Any], **fixed: Any) -> nn.Module:
        self.architecture = self.space.parse(self._architecture_text)
        options = {k: v for k, v in options.items() if k != "operations"}
        return super().build_network(options, arch=self.architecture, **fixed)


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
