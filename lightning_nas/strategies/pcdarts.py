"""PC-DARTS: partial channel connections for memory-efficient architecture search (Xu et al., ICLR 2020).

Two changes to DARTS. Partial channels (Sec. 3.2, Eq. 2): on each edge only 1/K of the channels
go through the mixed operation (whose operations are built with C/K channels), the rest bypass
it, and a channel shuffle mixes the two. Edge normalisation (Sec. 3.3, Eq. 4): each node sums its
incoming edges weighted by softmax(beta) over those edges, which stabilises the noisier alpha.
The discrete architecture is still the arg-max of alpha: every NB201 node keeps all its incoming
edges, so beta (which in DARTS' space picks the two strongest inputs, weight beta * alpha) does
not change it. Architectures are scored with the shared weights by running this partial-channel
super-net with one-hot alpha and the current edge weights.
"""
from __future__ import annotations

from typing import Any, Callable, Hashable, Literal, Optional

import torch
import torch.nn.functional as F
from torch import nn

from lightning_nas.seeding import generator
from lightning_nas.strategies.darts import DARTS


class PCDARTS(DARTS):
    """Args (defaults: PC-DARTS, Xu et al. 2020, Sec. 4.2, CIFAR-10 search):
        partial_channels: K = 4 (1/K of the channels enter the mixed operation); must divide
            ``network.C``.
        arch_lr, arch_weight_decay: Adam 6e-4, 1e-3, betas (0.5, 0.999).
        arch_warmup_epochs: the first 15 epochs train the weights only.
        lr, momentum, weight_decay, min_lr: SGD 0.1, 0.9, 3e-4, cosine to 0 over 50 epochs
            with batch size 256; first order (``unrolled=False``).
        grad_clip: 5.
    """

    def __init__(self, partial_channels: int = 4, unrolled: bool = False, arch_lr: float = 6e-4,
                 arch_betas: tuple[float, float] = (0.5, 0.999), arch_weight_decay: float = 1e-3,
                 arch_init_std: float = 1e-3, arch_warmup_epochs: int = 15, grad_clip: float = 5.0,
                 space: str = "nb201", space_options: Optional[dict[str, Any]] = None,
                 network: Optional[dict[str, Any]] = None, num_classes: int = 10, in_channels: int = 3,
                 lr: float = 0.1, momentum: float = 0.9, weight_decay: float = 3e-4, nesterov: bool = False,
                 lr_schedule: Literal["cosine", "constant"] = "cosine", min_lr: float = 0.0, seed: int = 0) -> None:
        if partial_channels < 1:
            raise ValueError(f"model.partial_channels must be >= 1, got {partial_channels}")
        if "partial_channels" in (network or {}):
            raise ValueError("model.network.partial_channels: set model.partial_channels instead")
        self._partial_channels = partial_channels
        super().__init__(unrolled=unrolled, arch_lr=arch_lr, arch_betas=arch_betas,
                         arch_weight_decay=arch_weight_decay, arch_init_std=arch_init_std,
                         arch_warmup_epochs=arch_warmup_epochs, grad_clip=grad_clip, space=space,
                         space_options=space_options, network=network, num_classes=num_classes,
                         in_channels=in_channels, lr=lr, momentum=momentum, weight_decay=weight_decay,
                         nesterov=nesterov, lr_schedule=lr_schedule, min_lr=min_lr, seed=seed)
        gen = generator(seed, "edge-normalisation-init")
        self.beta = nn.Parameter(arch_init_std * torch.randn(len(self.space.edges), generator=gen))
        targets = [target for target, _ in self.space.edges]
        if targets != sorted(targets):
            raise ValueError("model.space: PC-DARTS expects the space's edges grouped by target node")
        #: contiguous runs of edges that enter the same node
        self._edge_groups = [(targets.index(t), len(targets) - targets[::-1].index(t)) for t in sorted(set(targets))]

    def build_network(self, options: dict[str, Any], **fixed: Any) -> nn.Module:
        channels = int(options.get("C", 16))
        if channels % self._partial_channels:
            raise ValueError(f"model.partial_channels={self._partial_channels} must divide model.network.C={channels}")
        return super().build_network({**options, "partial_channels": self._partial_channels}, **fixed)

    def edge_weights(self) -> torch.Tensor:
        """softmax(beta) over the edges entering each node (Eq. 4)."""
        return torch.cat([F.softmax(self.beta[start:end], dim=0) for start, end in self._edge_groups])

    def relaxed_forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.supernet.forward_partial(x, self.expand(self.mixture_weights()), self.edge_weights())

    def architecture_parameters(self) -> list[nn.Parameter]:
        return [self.alpha, self.beta]

    def architecture_forward(self, arch: Hashable) -> Callable[[torch.Tensor], torch.Tensor]:
        ops = self.space.operations
        one_hot = torch.zeros_like(self.alpha)
        for e, op in enumerate(arch.ops):
            one_hot[e, ops.index(op)] = 1.0
        weights = self.expand(one_hot.detach())
        return lambda x: self.supernet.forward_partial(x, weights, self.edge_weights().detach())

    def forward(self, x: torch.Tensor, arch: Hashable) -> torch.Tensor:
        return self.architecture_forward(arch)(x)
