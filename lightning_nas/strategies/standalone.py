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
from lightning_nas.seeding import generator
from lightning_nas.strategies.base import FixedArchitecture


@STRATEGIES.register("standalone")
class Standalone(FixedArchitecture):
    """Args:
        architecture: the architecture's text form (e.g. an NB201 string).
        channels_last: image networks and their inputs in channels-last memory layout (faster
            convolutions on recent CPUs and on GPUs with tensor cores; same results up to rounding).
        compile: train through ``torch.compile`` (compilation takes minutes for the 20-cell DARTS
            network; ``speed/eval_network_speed.py`` measures every option).
        Everything else as ``SearchStrategy``; the NB201 benchmark trains with lr 0.1, nesterov
        momentum 0.9, weight decay 5e-4, cosine to 0 (Dong & Yang 2020, Sec. 2.3).
    """

    @classmethod
    def options_for_tests(cls, space: Any) -> dict[str, Any]:
        """A seeded architecture of ``space``: the one thing a stand-alone run needs."""
        return {"architecture": str(space.sample(generator(0, "test-architecture"))), **cls.test_options}

    def __init__(self, architecture: str, channels_last: bool = False, compile: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.architecture = self.space.parse(architecture)
        self.supernet = self.build_network(arch=self.architecture)
        #: the drop-path probability of the current epoch (networks with drop-path; 0 otherwise)
        self.drop_path = 0.0
        self.channels_last = channels_last and self.supernet.input_kind == "image"
        if self.channels_last:
            self.supernet = self.supernet.to(memory_format=torch.channels_last)
        #: the training forward, compiled with ``torch.compile`` on request (the weights stay those of
        #: ``self.supernet``, so checkpoints are unchanged)
        self.training_forward = (torch.compile(self.supernet.forward_with_auxiliary) if compile
                                 else self.supernet.forward_with_auxiliary)

    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Cross-entropy plus, for networks with an auxiliary head (DARTS' evaluation network),
        ``auxiliary_weight`` times the head's cross-entropy (Liu et al. 2019, A.2: weight 0.4)."""
        x, y = batch["weights"]
        with self.carried(batch, "weights"):
            logits, auxiliary = self.training_forward(self._layout(x), self.architecture)
        loss = self.regularised(self.classification_step(y, logits))
        if auxiliary is not None:
            auxiliary_loss = nn.functional.cross_entropy(auxiliary, y)
            self.log_train("train/auxiliary_loss", auxiliary_loss, len(y))
            loss = loss + self.supernet.auxiliary_weight * auxiliary_loss
        return loss

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """Drop-path grows linearly over the epochs (DARTS A.2); a function of the epoch, set before
        every batch, so that a run resumed mid-epoch (where Lightning skips ``on_train_epoch_start``)
        trains with the same probability."""
        self.drop_path = self.supernet.update_drop_path(self.current_epoch, int(self.trainer.max_epochs or 1))

    def on_train_epoch_end(self) -> None:
        if self.drop_path:
            self.log("train/drop_path", self.drop_path, on_step=False, on_epoch=True)
        super().on_train_epoch_end()

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        self._evaluate(x, y, "val", batch_idx)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        self._evaluate(x, y, "test", batch_idx)

    def _evaluate(self, x: torch.Tensor, y: torch.Tensor, prefix: str, batch_idx: int) -> None:
        stateful = self._trainer is not None and getattr(self.trainer.datamodule, "stateful", False)
        window = {"window": {"first": batch_idx == 0}} if stateful else {}
        with self.carried(window, prefix):  # evaluation windows follow each other in stream order
            logits = self(self._layout(x), self.architecture)
        loss = nn.functional.cross_entropy(logits, y)
        acc = (logits.argmax(-1) == y).float().mean() * 100
        self.log(f"{prefix}/loss", loss, sync_dist=True, batch_size=len(y))
        self.log(f"{prefix}/accuracy", acc, sync_dist=True, batch_size=len(y), prog_bar=True)
