"""Typed optimiser settings shared by every strategy, each strategy carrying its paper's defaults.

Recipes set them as one section (``model.init_args.optimizer.lr: 0.05``), type-checked by
jsonargparse; a strategy's signature states its paper's values as the default instance, so the
defaults live in one place per strategy and no argument list is repeated.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lightning_nas.errors import RecipeError


#: the optimisers' multi-tensor ("foreach") implementations, torch's default on CUDA, also on CPU: the
#: same arithmetic per element (bit for bit: tests/test_architecture_constant.py), one dispatched operator
#: per update of all parameters instead of one per parameter, so CPU counts of operators per step stand
#: for what a GPU launches (docs/benchmarks.md, issue 25)
FOREACH = True


@dataclass(frozen=True)
class WeightOptimizer:
    """SGD with momentum for the shared weights, cosine-annealed per epoch.

    Args:
        lr: initial learning rate. Super-nets want a lower rate than stand-alone networks ("How
            to Train Your Super-Net", Sec. 4.3); 0.025 is DARTS' search rate (Liu et al. 2019, A.1.1).
        momentum, weight_decay, nesterov: SGD's.
        schedule: ``cosine`` annealing to ``min_lr`` over ``trainer.max_epochs``, or ``constant``.
        min_lr: the cosine floor (DARTS: 0.001).
        grad_clip: gradient-norm bound on the shared weights (DARTS: 5); 0 disables it.
    """

    lr: float = 0.025
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = True
    schedule: Literal["cosine", "constant"] = "cosine"
    min_lr: float = 0.001
    grad_clip: float = 0.0

    def __post_init__(self) -> None:
        for key in ("lr", "momentum", "weight_decay", "min_lr", "grad_clip"):
            if getattr(self, key) < 0:
                raise RecipeError(f"model.optimizer.{key} must be >= 0, got {getattr(self, key)}")
        if self.schedule not in ("cosine", "constant"):
            raise RecipeError(f"model.optimizer.schedule must be 'cosine' or 'constant', got {self.schedule!r}")


@dataclass(frozen=True)
class ArchitectureOptimizer:
    """Adam for architecture parameters (relaxation weights, a controller).

    Args:
        lr, betas, weight_decay: DARTS' 3e-4, (0.5, 0.999), 1e-3 (Liu et al. 2019, Sec. 3.1.2).
        warmup_epochs: epochs of weight-only training before the architecture is updated (DARTS
            0; PC-DARTS 15, Xu et al. 2020, Sec. 4.2).
        grad_clip: gradient-norm bound on the architecture parameters (ENAS' controller: 5 in
            the NB201 port); 0 disables it.
    """

    lr: float = 3e-4
    betas: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = 1e-3
    warmup_epochs: int = 0
    grad_clip: float = 0.0

    def __post_init__(self) -> None:
        for key in ("lr", "weight_decay", "warmup_epochs", "grad_clip"):
            if getattr(self, key) < 0:
                raise RecipeError(f"model.architecture_optimizer.{key} must be >= 0, got {getattr(self, key)}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise RecipeError(f"model.architecture_optimizer.betas must be two values in [0, 1), got {self.betas}")


#: ``SearchStrategy``'s default: the class defaults above (SPOS/RandomNAS on NB201); one shared immutable instance
DEFAULT_WEIGHTS = WeightOptimizer()
#: ``BilevelStrategy``'s default: the class defaults above (DARTS, Liu et al. 2019, Sec. 3.1.2)
DEFAULT_ARCHITECTURE = ArchitectureOptimizer()
