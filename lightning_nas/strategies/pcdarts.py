"""PC-DARTS: partial channel connections for memory-efficient architecture search (Xu et al., ICLR 2020).

Two changes to DARTS. Partial channels (Sec. 3.2, Eq. 2): on each edge only 1/K of the channels
go through the mixed operation (whose operations are built with C/K channels), the rest bypass
it, and a channel shuffle mixes the two; the network must support it
(``SuperNet.supports_partial_channels``). Edge normalisation (Sec. 3.3, Eq. 4): the space's
edge-weight groups (beta, softmax over the inputs of each node) scale every edge, which
stabilises the noisier alpha; the space's decoding uses them where its rule selects inputs
(DARTS CNN: top-2 inputs by alpha * beta), while on NB201 every edge stays. Architectures are
scored with the shared weights by running this partial-channel super-net as the path's one-hot
relaxation (``SuperNet.path_as_relaxation``) with the current edge weights.
"""
from __future__ import annotations

from typing import Any, Callable, Hashable, Optional

import torch

from lightning_nas.errors import RecipeError
from lightning_nas.registry import STRATEGIES
from lightning_nas.strategies.darts import DARTS
from lightning_nas.strategies.settings import ArchitectureOptimizer, WeightOptimizer

#: PC-DARTS' CIFAR-10 search (Xu et al. 2020, Sec. 4.2): SGD 0.1 cosine to 0 over 50 epochs,
#: batch 256, weight decay 3e-4, clipping 5; Adam 6e-4 for alpha/beta after 15 warm-up epochs.
PCDARTS_WEIGHTS = WeightOptimizer(lr=0.1, momentum=0.9, weight_decay=3e-4, nesterov=False, min_lr=0.0, grad_clip=5.0)
PCDARTS_ARCHITECTURE = ArchitectureOptimizer(lr=6e-4, betas=(0.5, 0.999), weight_decay=1e-3, warmup_epochs=15)


@STRATEGIES.register("pcdarts")
class PCDARTS(DARTS):
    """Args (defaults: PC-DARTS, Xu et al. 2020, Sec. 4.2, CIFAR-10 search):
        partial_channels: K = 4 (1/K of the channels enter the mixed operation); must divide
            the network's channel count.
        optimizer, architecture_optimizer: ``PCDARTS_WEIGHTS``, ``PCDARTS_ARCHITECTURE``.
    """

    requires = frozenset({"decisions", "relaxation", "partial_channels"})
    edge_normalisation = True
    #: no warm-up, so that one test step updates the architecture too
    test_options = {"architecture_optimizer.warmup_epochs": 0}

    def __init__(self, partial_channels: int = 4, unrolled: bool = False,
                 network: Optional[dict[str, Any]] = None, optimizer: WeightOptimizer = PCDARTS_WEIGHTS,
                 architecture_optimizer: ArchitectureOptimizer = PCDARTS_ARCHITECTURE, **kwargs: Any) -> None:
        if partial_channels < 1:
            raise RecipeError(f"model.partial_channels must be >= 1, got {partial_channels}")
        if "partial_channels" in (network or {}):
            raise RecipeError("model.network.partial_channels: set model.partial_channels instead")
        super().__init__(unrolled=unrolled, network={**(network or {}), "partial_channels": partial_channels},
                         optimizer=optimizer, architecture_optimizer=architecture_optimizer, **kwargs)
        self.partial_channels = partial_channels

    def architecture_forward(self, arch: Hashable) -> Callable[[torch.Tensor], torch.Tensor]:
        def run(x: torch.Tensor) -> torch.Tensor:
            edges = {g.name: g.normalise(self.arch_weights[g.name]).detach() for g in self.groups if g.edge_normalisation}
            return self.supernet.path_as_relaxation(x, arch, edges)

        return run

    def forward(self, x: torch.Tensor, arch: Hashable) -> torch.Tensor:
        return self.architecture_forward(arch)(x)
