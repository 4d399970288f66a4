"""GDAS: searching for a robust neural architecture in four GPU hours (Dong & Yang, CVPR 2019).

DARTS' softmax mixture is replaced by a Gumbel-softmax sample with a hard one-hot forward and a
soft backward (straight-through, Eq. 5-7): h = one_hot(argmax_o (log p_o + g_o)), with
g_o ~ Gumbel(0, 1), and the edge weight h - stop_grad(s) + s where s = softmax((log p + g) / tau).
Only the sampled operation of each edge runs, so a step costs about as much as a single path, and
alpha still receives a gradient through s. One sample per forward pass is shared by all cells
that share the weights. The temperature decays linearly from ``tau_max`` to ``tau_min`` over
``max_epochs``. Vector (edge) weight groups keep their softmax. Both alpha and w are updated first
order with the DARTS loop.

The straight-through estimator differs between the authors' ports, in the gradient only: on
NAS-Bench-201 (xautodl's ``NAS201SearchCell.forward_gdas``) every edge adds its non-sampled weights
as scalars, on the DARTS CNN space (xautodl's ``NASNetSearchCell.forward_gdas``) an edge returns only
the sampled operation times its weight. The network states its space's (``SuperNet.straight_through``);
a recipe may name either.
"""
from __future__ import annotations

from typing import Any, Literal, Optional

import torch
import torch.nn.functional as F

from lightning_nas.errors import RecipeError
from lightning_nas.nn.base import ActiveSet
from lightning_nas.registry import STRATEGIES
from lightning_nas.strategies.darts import DARTS, DARTS_ARCHITECTURE, DARTS_WEIGHTS
from lightning_nas.strategies.settings import ArchitectureOptimizer, WeightOptimizer


def hard_gumbel(alpha: torch.Tensor, gumbel: torch.Tensor, tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    """GDAS Eq. 5-7 for the rows of ``alpha`` given Gumbel(0, 1) noise: the straight-through weights
    ``h - stop_grad(s) + s`` (one-hot in value, softmax in gradient), s = softmax((log p + g) / tau),
    and the (rows, 1) indices of the sampled options."""
    soft = F.softmax((F.log_softmax(alpha, dim=-1) + gumbel) / tau, dim=-1)
    index = soft.argmax(dim=-1, keepdim=True)
    hard = torch.zeros_like(soft).scatter_(-1, index, 1.0)
    return hard - soft.detach() + soft, index


@STRATEGIES.register("gdas")
class GDAS(DARTS):
    """Args (defaults: the NB201 port of GDAS, Dong & Yang 2020, which NB201 recipes follow; the
    estimator: the space's port):
        tau_max, tau_min: Gumbel-softmax temperature, linearly 10 -> 0.1 over the search (the
            NB201 port; the GDAS paper anneals 10 -> 1 on CIFAR, Sec. 4.1).
        straight_through: ``reference`` - every edge also adds its non-sampled weights as
            scalars, as the authors' NB201 code does (zero in value, a gradient path to every
            alpha); ``sampled`` - only the sampled operation's weight enters the edge (same
            forward; the alpha gradient differs), as their DARTS-space code does. None (default):
            the network's ``straight_through``, the estimator of the authors' port for that space.
        optimizer, architecture_optimizer: DARTS' (SGD 0.025 cosine to 0.001, 3e-4 wd, clip 5;
            Adam 3e-4, (0.5, 0.999), 1e-3); 250 epochs with batch size 64 on NB201.
    """

    #: GDAS is first order (DARTS' ``unrolled`` test option does not apply); its defaults train alpha
    test_options = {}

    def __init__(self, tau_max: float = 10.0, tau_min: float = 0.1,
                 straight_through: Optional[Literal["reference", "sampled"]] = None,
                 optimizer: WeightOptimizer = DARTS_WEIGHTS,
                 architecture_optimizer: ArchitectureOptimizer = DARTS_ARCHITECTURE, **kwargs: Any) -> None:
        if not 0 < tau_min <= tau_max:
            raise RecipeError(f"model.tau_min ({tau_min}) and model.tau_max ({tau_max}) need 0 < tau_min <= tau_max")
        if straight_through not in (None, "reference", "sampled"):
            raise RecipeError(f"model.straight_through must be 'reference', 'sampled' or null (the network's), got "
                              f"{straight_through!r}")
        if kwargs.get("compile") is not None:
            raise RecipeError("model.compile: GDAS runs another sampled path every step (a new graph each time); "
                              "leave model.compile unset")
        super().__init__(unrolled=False, optimizer=optimizer, architecture_optimizer=architecture_optimizer, **kwargs)
        self.tau_max, self.tau_min = tau_max, tau_min
        #: the estimator in use: the recipe's, else the one the network states for its space
        self.straight_through: str = straight_through or self.supernet.straight_through
        #: option indices of the last sampled path per group, for inspection and tests
        self.last_indices: dict[str, torch.Tensor] = {}

    @property
    def tau(self) -> float:
        """Linear decay over the epochs (a function of the epoch, so resumption is exact)."""
        epochs = int(self.trainer.max_epochs or 1) if self._trainer is not None else 1
        progress = self.current_epoch / max(1, epochs - 1) if self._trainer is not None else 0.0
        return self.tau_max - (self.tau_max - self.tau_min) * min(1.0, progress)

    def sample_weights(self, tau: Optional[float] = None) -> tuple[dict[str, torch.Tensor], ActiveSet]:
        """Straight-through one-hot weights for every operation group (the seeded architecture
        generator draws the Gumbel noise, identically on every rank) and the active options."""
        tau = self.tau if tau is None else tau
        weights: dict[str, torch.Tensor] = {}
        indices: dict[str, torch.Tensor] = {}
        for group in self.groups:
            alpha = self.arch_weights[group.name]
            if len(group.shape) == 1:
                weights[group.name] = group.normalise(alpha)
                continue
            noise = -torch.empty(alpha.shape, dtype=torch.float64).exponential_(generator=self.arch_generator).log()
            weights[group.name], index = hard_gumbel(alpha, noise.to(alpha.device, alpha.dtype), tau)
            indices[group.name] = index.cpu()  # one copy per group: the cells read the indices per edge
        return weights, ActiveSet(indices, passthrough=self.straight_through == "reference")

    def relaxed_forward(self, x: torch.Tensor) -> torch.Tensor:
        weights, active = self.sample_weights()
        self.last_indices = {k: v.reshape(-1) for k, v in active.indices.items()}
        return self.supernet.forward_weighted(x, weights, active)

    def on_train_epoch_end(self) -> None:
        """Log the epoch's temperature (at its end: Lightning skips ``on_train_epoch_start`` when a run
        resumes mid-epoch, which would leave the resumed epoch's row without it)."""
        self.log("arch/tau", self.tau, on_step=False, on_epoch=True)
        super().on_train_epoch_end()
