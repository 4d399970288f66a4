"""Bi-level optimisation shared by every strategy with architecture parameters.

DARTS' Alg. 1 (Liu et al. 2019): alternately update the architecture on the architecture split
(``batch["arch"]``) and the shared weights on the weights split (``batch["weights"]``). ENAS has
the same shape with a controller as the architecture and REINFORCE as its update. A variant
(DrNAS, SNAS, ...) overrides ``architecture_loss`` (or ``architecture_step``) and
``weight_forward``; the optimisers, warm-up and scheduler stepping live here, and both updates clip
with the base class's one rule (``clip_by_norm``).
"""
from __future__ import annotations

import contextlib
from types import MappingProxyType
from typing import Any, Iterator

import torch

from lightning_nas.strategies.base import Batch, SearchStrategy
from lightning_nas.strategies import settings
from lightning_nas.strategies.settings import DEFAULT_ARCHITECTURE, ArchitectureOptimizer


class BilevelStrategy(SearchStrategy):
    """Args:
        architecture_optimizer: Adam for the architecture parameters (``ArchitectureOptimizer``;
            DARTS' defaults).
        Everything else as ``SearchStrategy``.
    """

    #: the architecture learns on held-out training data: half of what the validation split leaves, as
    #: DARTS (Liu et al. 2019, A.1.1: half of the CIFAR-10 training data held out), PC-DARTS (Xu et al.
    #: 2020, Sec. 4.2: two parts of equal size) and NAS-Bench-201's search protocol (Dong & Yang 2020:
    #: CIFAR-10's training set in train/valid halves for every strategy) hold out; ENAS' controller
    #: reward is measured on held-out data the same way (Pham et al. 2018, Sec. 2.2)
    data_needs = MappingProxyType({"arch_split": 0.5})

    def __init__(self, architecture_optimizer: ArchitectureOptimizer = DEFAULT_ARCHITECTURE, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.arch_optim = architecture_optimizer
        self.automatic_optimization = False

    # ------------------------------------------------------------------ what variants override
    def weight_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The super-net as the weight step trains it."""
        raise NotImplementedError

    def architecture_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The loss whose gradient updates the architecture parameters (first order)."""
        raise NotImplementedError

    def architecture_step(self, batch: Batch, weight_optimizer: torch.optim.Optimizer) -> None:
        """Write the architecture gradient (default: backward of ``architecture_loss`` on the arch split)."""
        x, y = batch["arch"]
        with self.carried(batch, "arch"), self.weights_constant():
            loss = self.architecture_loss(x, y)
        if loss.requires_grad:  # else the sampled path reaches no architecture parameter (GDAS: 'none' on every
            self.manual_backward(loss)  # edge it draws): no gradient, as the backward would have left it
        self.log_train("arch/loss", loss, len(y))

    @contextlib.contextmanager
    def architecture_constant(self) -> Iterator[None]:
        """The architecture as a constant while the weight step's graph is built.

        The weight step (DARTS Alg. 1, step 2: w <- w - xi grad_w L_train(w, alpha)) needs no gradient
        for alpha, and the next architecture step zeroes whatever it would write. With alpha's
        ``requires_grad`` off while the forward runs, autograd records no path back to it: the
        backward computes the same weight gradients and skips alpha's (per mixed edge, the products of
        every operation's output with the incoming gradient, and the normalisation's backward): fewer
        operators per step, the lever where a GPU is launch-bound (issue 25)."""
        with _constant(self.architecture_parameters()):
            yield

    @contextlib.contextmanager
    def weights_constant(self) -> Iterator[None]:
        """The shared weights as constants while a first-order architecture step's graph is built
        (DARTS Alg. 1, step 1 with xi = 0: alpha <- alpha - grad_alpha L_val(w, alpha)): no weight
        gradient is computed that the weight step would zero (the convolutions' and the classifier's
        weight gradients, their accumulation)."""
        with _constant(self.weight_parameters()):
            yield

    # ------------------------------------------------------------------ the loop
    def configure_optimizers(self) -> Any:
        optimizer, scheduler = self.weight_optimizer()
        a = self.arch_optim
        arch_optimizer = torch.optim.Adam(self.architecture_parameters(), lr=a.lr, betas=tuple(a.betas),
                                          weight_decay=a.weight_decay, foreach=settings.FOREACH)
        return [optimizer, arch_optimizer], [{"scheduler": scheduler, "interval": "epoch"}]

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        weight_opt, arch_opt = self.optimizers()
        if self.current_epoch >= self.arch_optim.warmup_epochs:
            arch_opt.zero_grad()
            self.architecture_step(batch, weight_opt.optimizer)
            self.clip_by_norm(arch_opt, self.arch_optim.grad_clip)
            arch_opt.step()
        x, y = batch["weights"]
        weight_opt.zero_grad()
        with self.carried(batch, "weights"), self.architecture_constant():
            loss = self.classification_step(y, self.weight_forward(x))
        self.manual_backward(self.regularised(loss))
        self.clip_by_norm(weight_opt, self.optim.grad_clip)
        weight_opt.step()
        return loss.detach()


@contextlib.contextmanager
def _constant(parameters: list[torch.nn.Parameter]) -> Iterator[None]:
    """``requires_grad`` off for ``parameters`` while a graph is built, restored on exit (a graph built
    inside records no path back to them; the values are the same tensors)."""
    switched = [p for p in parameters if p.requires_grad]
    for p in switched:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in switched:
            p.requires_grad_(True)
