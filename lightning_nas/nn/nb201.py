"""The NAS-Bench-201 macro network, as a super-net and as a stand-alone network.

Structure (Dong & Yang 2020, Sec. 2.1): 3x3 conv stem + BN; three stages of N cells with C, 2C
and 4C channels separated by residual reduction blocks; BN + ReLU; global average pooling;
linear classifier. ``NB201Network(arch=...)`` builds the benchmark network of one architecture
(its parameter count is the benchmark's), ``NB201Network()`` the super-net holding every
operation on every edge. Both share ``NB201Cell``, and the stand-alone state-dict keys are a
subset of the super-net's, so a super-net path *is* a stand-alone network with copied weights.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from lightning_nas.nn.ops import NB201_OPS, ReLUConvBN
from lightning_nas.spaces.nb201 import EDGES, NUM_NODES, OPERATIONS, NB201Architecture


class NB201Cell(nn.Module):
    """Dense 4-node cell; ``candidates[e]`` are the operations instantiated on edge ``e``."""

    def __init__(self, channels: int, candidates: Sequence[Sequence[str]],
                 affine: bool = True, track_running_stats: bool = True, partial_channels: int = 1) -> None:
        super().__init__()
        if partial_channels < 1 or channels % partial_channels:
            raise ValueError(f"partial_channels={partial_channels} must be >= 1 and divide the cell's {channels} channels")
        #: PC-DARTS' K: the operations see only channels // K channels (1: the ordinary cell).
        self.partial_channels = partial_channels
        op_channels = channels // partial_channels
        self.edges = nn.ModuleList(
            nn.ModuleDict({op: NB201_OPS.get(op)(op_channels, affine, track_running_stats) for op in ops if op != "none"})
            for ops in candidates
        )
        #: For each node 1..3, the (edge index, source node) pairs that feed it.
        self.inputs = [[(e, src) for e, (tgt, src) in enumerate(EDGES) if tgt == node] for node in range(1, NUM_NODES)]

    def forward(self, x: torch.Tensor, ops: Sequence[str]) -> torch.Tensor:
        """Run the single path ``ops`` (one operation name per edge); ``none`` edges cost nothing."""
        nodes = [x]
        for inputs in self.inputs:
            total = None
            for e, src in inputs:
                if ops[e] == "none":
                    continue
                out = self.edges[e][ops[e]](nodes[src])
                total = out if total is None else total + out
            nodes.append(torch.zeros_like(x) if total is None else total)
        return nodes[-1]

    def forward_mixture(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Every edge returns sum_o weights[e, o] * op_o(x) over ``OPERATIONS`` (DARTS, Eq. 2)."""
        nodes = [x]
        for inputs in self.inputs:
            total = torch.zeros_like(x)
            for e, src in inputs:
                for o, op in enumerate(OPERATIONS):
                    if op in self.edges[e]:  # ``none`` contributes zeros
                        total = total + weights[e, o] * self.edges[e][op](nodes[src])
            nodes.append(total)
        return nodes[-1]

    def forward_sampled(self, x: torch.Tensor, indices: Sequence[int], weights: torch.Tensor) -> torch.Tensor:
        """One operation per edge, ``indices[e]`` into ``OPERATIONS``, scaled by ``weights[e, indices[e]]``.

        GDAS (Dong & Yang, CVPR 2019, Eq. 5-7): with straight-through one-hot ``weights`` the value is
        that of the single path while alpha still receives the Gumbel-softmax gradient; only the chosen
        operation runs (``none`` runs nothing).
        """
        nodes = [x]
        for inputs in self.inputs:
            total = None
            for e, src in inputs:
                op = OPERATIONS[int(indices[e])]
                if op == "none":
                    continue
                out = weights[e, int(indices[e])] * self.edges[e][op](nodes[src])
                total = out if total is None else total + out
            nodes.append(torch.zeros_like(x) if total is None else total)
        return nodes[-1]

    def forward_partial(self, x: torch.Tensor, weights: torch.Tensor, edge_weights: torch.Tensor) -> torch.Tensor:
        """PC-DARTS (Xu et al., ICLR 2020, Eq. 2 and 4): partial channels plus edge normalisation.

        On each edge the first C/K channels go through the softmax-weighted mixed operation, the other
        channels bypass it, and a channel shuffle with K groups interleaves the two so that other channels
        are sampled by the next cell. Node j sums its incoming edges weighted by ``edge_weights`` (beta,
        already normalised per node). Taking the first slice rather than a random one is what the
        authors' code does; the shuffle makes the choice vary across cells.
        """
        k = self.partial_channels
        part = x.shape[1] // k
        nodes = [x]
        for inputs in self.inputs:
            total = torch.zeros_like(x)
            for e, src in inputs:
                h = nodes[src]
                inside, bypass = h[:, :part], h[:, part:]
                mixed = torch.zeros_like(inside)
                for o, op in enumerate(OPERATIONS):
                    if op in self.edges[e]:
                        mixed = mixed + weights[e, o] * self.edges[e][op](inside)
                total = total + edge_weights[e] * channel_shuffle(torch.cat([mixed, bypass], dim=1), k)
            nodes.append(total)
        return nodes[-1]


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet's channel shuffle (Zhang et al. 2018), used by PC-DARTS after each partial edge."""
    if groups == 1:
        return x
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class ResidualReduction(nn.Module):
    """The residual block between stages: stride-2 ReLUConvBN pair plus avg-pool/1x1-conv shortcut."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, stride=2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


class NB201Network(nn.Module):
    """NB201 macro network; a super-net when ``arch`` is None, else the stand-alone net of ``arch``.

    Defaults are the benchmark's: C=16, N=5. ``affine`` and ``track_running_stats`` apply to the
    batch norms inside the cells (the benchmark trains stand-alone nets with both on; DARTS-style
    super-nets commonly use ``affine=False``). ``partial_channels`` (K) builds the PC-DARTS
    super-net whose operations see C/K channels (``forward_partial`` only); 1 leaves the network
    untouched.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, C: int = 16, N: int = 5,
                 arch: NB201Architecture | None = None, operations: Sequence[str] = OPERATIONS,
                 affine: bool = True, track_running_stats: bool = True, partial_channels: int = 1) -> None:
        super().__init__()
        if C < 1 or N < 1:
            raise ValueError(f"NB201 network needs C >= 1 and N >= 1, got C={C}, N={N}")
        if partial_channels < 1 or C % partial_channels:
            raise ValueError(f"model.network.partial_channels={partial_channels} must be >= 1 and divide C={C}")
        if partial_channels > 1 and arch is not None:
            raise ValueError("partial_channels applies to the PC-DARTS super-net only, not to a stand-alone network")
        self.config = dict(num_classes=num_classes, in_channels=in_channels, C=C, N=N,
                           affine=affine, track_running_stats=track_running_stats)
        self.partial_channels = partial_channels
        self.arch = arch
        self.operations = tuple(operations)
        candidates = [(op,) for op in arch.ops] if arch is not None else [self.operations] * len(EDGES)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
        layers: list[nn.Module] = []
        channels = C
        for stage in range(3):
            if stage > 0:
                layers.append(ResidualReduction(channels, channels * 2))
                channels *= 2
            layers.extend(NB201Cell(channels, candidates, affine, track_running_stats, partial_channels)
                          for _ in range(N))
        self.layers = nn.ModuleList(layers)
        self.head = nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(inplace=False))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)

    def _run(self, x: torch.Tensor, cell_forward) -> torch.Tensor:
        x = self.stem(x)
        for layer in self.layers:
            x = cell_forward(layer, x) if isinstance(layer, NB201Cell) else layer(x)
        x = self.pool(self.head(x)).flatten(1)
        return self.classifier(x)

    def forward(self, x: torch.Tensor, arch: NB201Architecture | None = None) -> torch.Tensor:
        arch = arch if arch is not None else self.arch
        if arch is None:
            raise ValueError("a super-net forward needs an architecture: call net(x, arch)")
        return self._run(x, lambda cell, h: cell(h, arch.ops))

    def forward_mixture(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Continuous relaxation: ``weights`` has shape (6, len(OPERATIONS))."""
        return self._run(x, lambda cell, h: cell.forward_mixture(h, weights))

    def forward_sampled(self, x: torch.Tensor, indices: Sequence[int], weights: torch.Tensor) -> torch.Tensor:
        """One sampled operation per edge (shared by all cells), scaled by its (straight-through) weight."""
        return self._run(x, lambda cell, h: cell.forward_sampled(h, indices, weights))

    def forward_partial(self, x: torch.Tensor, weights: torch.Tensor, edge_weights: torch.Tensor) -> torch.Tensor:
        """PC-DARTS relaxation: ``weights`` (6, len(OPERATIONS)), ``edge_weights`` (6,)."""
        return self._run(x, lambda cell, h: cell.forward_partial(h, weights, edge_weights))

    def standalone(self, arch: NB201Architecture) -> "NB201Network":
        """The stand-alone network of ``arch`` carrying this super-net's weights for that path."""
        if self.partial_channels > 1:
            raise ValueError("a partial-channel (PC-DARTS) super-net has no stand-alone paths: its operations see C/K channels")
        net = NB201Network(**self.config, arch=arch)
        shared = self.state_dict()
        net.load_state_dict({key: shared[key] for key in net.state_dict()})
        return net
