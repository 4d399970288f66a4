"""The NAS-Bench-201 macro network, as a super-net and as a stand-alone network.

Structure (Dong & Yang 2020, Sec. 2.1): 3x3 conv stem + BN; three stages of N cells with C, 2C
and 4C channels separated by residual reduction blocks; BN + ReLU; global average pooling;
linear classifier. ``NB201Network(arch=...)`` builds the benchmark network of one architecture
(its parameter count is the benchmark's), ``NB201Network()`` the super-net holding every
operation on every edge. ``path_dropout`` and ``global_dropout`` (default off) are the dropout
factors of Yu et al., "How to Train Your Super-Net" (Table 1), in training mode only, with masks
from the network's seeded stream (``lightning_nas.nn.noise``). Both share ``NB201Cell``, and the stand-alone state-dict keys are a
subset of the super-net's, so a super-net path *is* a stand-alone network with copied weights.
"""
from __future__ import annotations

from typing import Any, Callable, Literal, Mapping, Optional, Sequence

import torch
from torch import nn

from lightning_nas.errors import RecipeError
from lightning_nas.nn.base import (Active, SuperNet, active_options, check_partial_channels, node_value, passes_through,
                                   stateless_key)
from lightning_nas.nn.noise import NoiseStream, check_rate
from lightning_nas.nn.partial import assemble, node_matrices, operation_outputs, split_source
from lightning_nas.nn.ops import NB201_OPS, ReLUConvBN
from lightning_nas.registry import NETWORKS
from lightning_nas.spaces.nb201 import EDGES, NUM_NODES, NB201Architecture, NB201Space

Edge = Callable[[int, torch.Tensor], Optional[torch.Tensor]]
#: who owns an operation's weights: each edge (NB201, DARTS) or the node the edge enters
OpsOn = Literal["edge", "node"]


def owners(ops_on: OpsOn) -> list[int]:
    """Per edge (``EDGES`` order), the index of the operation set it runs: ``edge`` - its own (one set per
    edge, the benchmark's cell); ``node`` - one set per target node, shared by all edges entering it
    (the "op on node" factor of Yu et al., "How to Train Your Super-Net", Table 1)."""
    if ops_on == "edge":
        return list(range(len(EDGES)))
    if ops_on != "node":
        raise RecipeError(f"model.network.ops_on must be 'edge' or 'node', got {ops_on!r}")
    targets = sorted({tgt for tgt, _ in EDGES})
    return [targets.index(tgt) for tgt, _ in EDGES]


class NB201Cell(nn.Module):
    """Dense 4-node cell; ``candidates[e]`` are the operations instantiated on edge ``e``.

    ``partial_channels`` (PC-DARTS' K) builds the operations with C/K channels; only the relaxed
    forward can run such a cell."""

    def __init__(self, channels: int, candidates: Sequence[Sequence[str]],
                 affine: bool = True, track_running_stats: bool = True, partial_channels: int = 1,
                 ops_on: OpsOn = "edge") -> None:
        super().__init__()
        if partial_channels < 1 or channels % partial_channels:
            raise ValueError(f"partial_channels={partial_channels} must be >= 1 and divide the cell's {channels} channels")
        op_channels = channels // partial_channels
        #: edge -> index of the operation set it runs (``edges``): its own, or its target node's
        self.owner = owners(ops_on)
        served: dict[int, list[str]] = {}
        for e, ops in enumerate(candidates):
            served.setdefault(self.owner[e], [])
            served[self.owner[e]] += [op for op in ops if op != "none" and op not in served[self.owner[e]]]
        self.edges = nn.ModuleList(
            nn.ModuleDict({op: NB201_OPS.get(op)(op_channels, affine, track_running_stats) for op in served[k]})
            for k in range(len(served))
        )
        #: For each node 1..3, the (edge index, source node) pairs that feed it.
        self.inputs = self.node_inputs()

    def run(self, x: torch.Tensor, edge: Edge) -> torch.Tensor:
        """Node j = sum of ``edge(e, node_i)`` over its incoming edges (None: the edge adds nothing)."""
        nodes = [x]
        for inputs in self.inputs:
            total = None
            for e, src in inputs:
                out = edge(e, nodes[src])
                if out is not None:
                    total = out if total is None else total + out
            nodes.append(node_value(total, x))
        return nodes[-1]

    @staticmethod
    def node_inputs() -> list[list[tuple[int, int]]]:
        """For each node 1..3, the (edge index, source node) pairs that feed it."""
        return [[(e, src) for e, (tgt, src) in enumerate(EDGES) if tgt == node] for node in range(1, NUM_NODES)]

    def run_mixed(self, x: torch.Tensor, plan, k: int = 1,
                  drop_path: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> torch.Tensor:
        """The relaxed cell, one node at a time (``NB201Network.forward_weighted``): ``plan`` holds per
        node its (edge, source, op) terms, their weights and GDAS' constant, or with partial channels
        (PC-DARTS, K = ``k``) the node's matrix (``lightning_nas.nn.partial``), whether it carries a
        constant, and the sources of the bypassed channels. ``drop_path`` (path
        dropout in training) gives a sample's keep mask; one mask per edge scales all of its
        operations' outputs, so a dropped edge is dropped whole, as on the single path. An operation
        without parameters or buffers (the 3x3 average pooling) is a function of its input alone, so it
        runs once per source node and configuration for all the edges that read the node. With partial
        channels (and no path dropout) the edges of a node that apply one operation run as one kernel on
        their sources' C/K channels concatenated (``lightning_nas.nn.grouped``)."""
        nodes, shared, masks = [x], {}, {}
        stateless: dict[tuple, torch.Tensor] = {}

        def source(src: int, what: str, activation: Optional[nn.Module] = None) -> torch.Tensor:
            """Per source node, once: the operations' input (PC-DARTS: its first C/K channels, and the
            others as ``bypass``) and its activation (``relu``: computed by the first convolution unit
            that reads the node with its own activation module, so a swapped activation is honoured)."""
            key = (src, what)
            if key not in shared:
                h = nodes[src]
                if what in ("input", "bypass") and k > 1:  # one split per source: one gradient cat, not two slices
                    shared[(src, "input")], shared[(src, "bypass")] = split_source(h, k)
                elif what == "input":
                    shared[key] = h
                else:  # the ReLU in front of every convolution reading this node
                    shared[key] = activation(source(src, "input"))
            return shared[key]

        def one(e: int, src: int, op: str) -> torch.Tensor:
            module = self.edges[self.owner[e]][op]
            if isinstance(module, ReLUConvBN):
                out = module(source(src, "relu", module[0]), activated=True)
            elif stateless_key(module) is not None:
                key = (src, stateless_key(module))
                if key not in stateless:
                    stateless[key] = module(source(src, "input"))
                out = stateless[key]
            else:
                out = module(source(src, "input"))
            if drop_path is not None:
                if e not in masks:
                    masks[e] = drop_path(out)
                out = out * masks[e]
            return out

        kernels: dict = {}
        for terms, w, constant, bypass in plan:
            if bypass is not None:  # PC-DARTS: an operation's edges as one kernel, the node in one product
                if drop_path is not None:  # the masks in edge order, as edge by edge (the terms go by operation)
                    for e in sorted({e for e, _, _ in terms} - set(masks)):
                        masks[e] = drop_path(nodes[0])
                outputs = operation_outputs(terms, lambda e, op: self.edges[self.owner[e]][op], one,
                                            lambda src: source(src, "input"), kernels, grouped=drop_path is None)
                nodes.append(assemble(w, outputs, [source(src, "bypass") for src in bypass], constant))
                continue
            outputs = [one(e, src, op) for e, src, op in terms]
            if not outputs:
                total = None
            elif len(outputs) == 1:
                total = w[0] * outputs[0]
            else:
                stacked = torch.stack(outputs)
                total = torch.tensordot(w.to(stacked.dtype), stacked, dims=1)
            if constant is not None:
                total = constant if total is None else total + constant
            nodes.append(node_value(total, x))
        return nodes[-1]

    def operation(self, e: int, op: str, h: torch.Tensor) -> Optional[torch.Tensor]:
        """Operation ``op`` of edge ``e`` on ``h``; None for ``none`` (zeros cost nothing)."""
        return self.edges[self.owner[e]][op](h) if op != "none" else None

    def forward(self, x: torch.Tensor, ops: Sequence[str]) -> torch.Tensor:
        """Run the single path ``ops`` (one operation name per edge)."""
        return self.run(x, lambda e, h: self.operation(e, ops[e], h))


class ResidualReduction(nn.Module):
    """The residual block between stages: stride-2 ReLUConvBN pair plus avg-pool/1x1-conv shortcut."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, stride=2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


@NETWORKS.register("nb201")
class NB201Network(SuperNet):
    """NB201 macro network; a super-net when ``arch`` is None, else the stand-alone net of ``arch``.

    Defaults are the benchmark's: C=16, N=5. ``space`` gives the operations every edge holds
    (default: the full NB201 space). ``affine`` and ``track_running_stats`` apply to the batch
    norms inside the cells (the benchmark trains stand-alone nets with both on; DARTS-style
    super-nets commonly use ``affine=False``). ``partial_channels`` (K) builds the PC-DARTS
    super-net whose operations see C/K channels (relaxed forward only); 1 leaves it untouched.
    ``path_dropout``: each cell edge's output (single path or mixed) is dropped per sample with this
    probability in training; ``global_dropout``: dropout on the pooled features before the
    classifier; both 0 by default (the benchmark and SPOS train without). ``seed`` seeds their
    masks (None: drawn from torch's seeded global generator after the parameters are initialised).
    ``ops_on``: ``edge`` (default, the benchmark's cell: every edge owns its operations) or ``node``
    (Yu et al., "How to Train Your Super-Net", Table 1, "Op on Node/Edge"): the operations belong to
    the node an edge enters, so the edges into one node that choose the same operation share its
    weights (nodes 2 and 3 each keep one set instead of two and three). Yu et al.'s NB201 code
    (``SearchCellOnNode``) shares among the edges from intermediate nodes and keeps the edge from the
    cell input apart; here every edge into a node shares, the definition the table's name states.
    A stand-alone network built with it shares the same way (the path's own function).
    """

    supports_partial_channels = True
    tiny_options = {"C": 4, "N": 1, "affine": False}

    def __init__(self, space: Optional[NB201Space] = None, num_classes: int = 10, in_channels: int = 3, C: int = 16,
                 N: int = 5, arch: Optional[NB201Architecture] = None, affine: bool = True,
                 track_running_stats: bool = True, partial_channels: int = 1, path_dropout: float = 0.0,
                 global_dropout: float = 0.0, seed: Optional[int] = None, ops_on: OpsOn = "edge") -> None:
        super().__init__()
        if C < 1 or N < 1:
            raise ValueError(f"NB201 network needs C >= 1 and N >= 1, got C={C}, N={N}")
        check_partial_channels(C, partial_channels, arch)
        self.space = space if space is not None else NB201Space()
        self.partial_channels = partial_channels
        self.arch = arch
        self.operations = self.space.operations
        candidates = [(op,) for op in arch.ops] if arch is not None else [self.operations] * len(EDGES)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
        layers: list[nn.Module] = []
        channels = C
        for stage in range(3):
            if stage > 0:
                layers.append(ResidualReduction(channels, channels * 2))
                channels *= 2
            layers.extend(NB201Cell(channels, candidates, affine, track_running_stats, partial_channels, ops_on)
                          for _ in range(N))
        self.layers = nn.ModuleList(layers)
        self.head = nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(inplace=False))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)
        self.path_dropout = check_rate("path_dropout", path_dropout)
        self.global_dropout = check_rate("global_dropout", global_dropout)
        self.noise: Optional[NoiseStream] = None
        if self.path_dropout or self.global_dropout:  # after the parameters: their initialisation is unchanged
            self.noise = NoiseStream(seed)
            self.config["seed"] = self.noise.seed  # a stand-alone copy draws from the same stream

    # ------------------------------------------------------------------ dropout stream (None: no dropout)
    def seed_rank_stream(self, rank: int) -> None:
        if self.noise is not None:
            self.noise.seed_rank(rank)

    def noise_state(self) -> Any:
        return None if self.noise is None else self.noise.generator.get_state()

    def set_noise_state(self, state: Any) -> None:
        if self.noise is not None and state is not None:
            self.noise.generator.set_state(state)

    def rank_state(self) -> Any:
        return None if self.noise is None else self.noise.get_extra_state()

    def load_rank_state(self, state: Any) -> None:
        if self.noise is not None and state is not None:
            self.noise.set_extra_state(state)

    def _run(self, x: torch.Tensor, edge: Callable[[NB201Cell, int, torch.Tensor], Optional[torch.Tensor]]) -> torch.Tensor:
        noise = self.noise if self.training else None
        if noise is not None and self.path_dropout:
            inner, p = edge, self.path_dropout

            def edge(cell: NB201Cell, e: int, h: torch.Tensor) -> Optional[torch.Tensor]:  # noqa: F811
                out = inner(cell, e, h)
                return None if out is None else noise.drop_path(out, p)
        x = self.stem(x)
        for layer in self.layers:
            x = layer.run(x, lambda e, h, cell=layer: edge(cell, e, h)) if isinstance(layer, NB201Cell) else layer(x)
        x = self.pool(self.head(x)).flatten(1)
        if noise is not None:
            x = noise.dropout(x, self.global_dropout)
        return self.classifier(x)

    def forward(self, x: torch.Tensor, arch: Optional[NB201Architecture] = None) -> torch.Tensor:
        arch = self.path_architecture(arch)
        if self.partial_channels > 1:  # PC-DARTS' super-net has relaxed edges only
            return self.path_as_relaxation(x, arch)
        return self._run(x, lambda cell, e, h: cell.operation(e, arch.ops[e], h))

    def forward_weighted(self, x: torch.Tensor, weights: Mapping[str, torch.Tensor], active: Active = None) -> torch.Tensor:
        """Edge e returns ``edges[e] * sum_{o in active} ops[e, o] * op_o(h)`` (DARTS Eq. 2; with
        partial channels PC-DARTS Eq. 2 and 4: the edge weight scales the whole partial-channel
        output, bypass included, as in the authors' ``weights2[j] * MixedOp(h)``). ``ops`` columns
        follow the space's operations.

        A node is computed at once (``NB201Cell.run_mixed``): the outputs of every operation on
        every incoming edge are stacked and contracted with the node's weights in one product, and
        the ReLU in front of the convolutions runs once per source node (every edge still calls its
        own operation modules). Summation over the edges is part of the contraction, so values
        agree with the per-edge sum within float rounding; one-hot weights still give the path bit for bit."""
        ops, edge_weights = weights["ops"], weights.get("edges")
        names = self.operations
        k = self.partial_channels
        rows = [list(active_options(active, "ops", e, len(names))) for e in range(len(EDGES))]
        if edge_weights is not None:  # edges[e] * sum_o w[e, o] op_o = sum_o (edges[e] w[e, o]) op_o: one product
            ops = ops * edge_weights[:, None]
        constants = None
        if passes_through(active, "ops"):  # GDAS reference: inactive weights as constants (edge-scaled as before)
            inactive = torch.ones_like(ops, dtype=torch.bool)
            for e, options in enumerate(rows):
                inactive[e, options] = False
            constants = (ops * inactive.to(ops.dtype)).sum(dim=1)
        if k > 1:
            return self._run_mixed(x, self._partial_plan(ops, edge_weights, constants, rows))
        # per node: the (edge, source, op name) terms, their weights (one index for all nodes), the constant
        inputs = NB201Cell.node_inputs()
        terms = [[(e, src, names[o]) for e, src in node for o in rows[e] if names[o] != "none"] for node in inputs]
        flat = [(e, o) for node in inputs for e, _ in node for o in rows[e] if names[o] != "none"]
        w_all = ops[[e for e, _ in flat], [o for _, o in flat]].split([len(t) for t in terms]) if flat else None
        plan = [(t, w_all[i] if t else None,
                 constants[[e for e, _ in inputs[i]]].sum() if constants is not None else None, None)
                for i, t in enumerate(terms)]
        return self._run_mixed(x, plan)

    def _partial_plan(self, ops: torch.Tensor, edge_weights: Optional[torch.Tensor], constants: Optional[torch.Tensor],
                      rows: list[list[int]]) -> list:
        """PC-DARTS' plan: per node its terms, its (K x n) matrix (operation weights, already scaled by
        the edge weights, and the edge weights of its sources' bypass), whether GDAS' constant is a
        column, and its sources; the weights of all nodes indexed at once, where they lie in ``ops``."""
        names, inputs = self.operations, NB201Cell.node_inputs()
        # operation by operation, so that the edges of one operation run as one kernel (``operation_outputs``)
        order = [[(o, e, src) for o in range(len(names)) for e, src in node if o in rows[e] and names[o] != "none"]
                 for node in inputs]
        terms = [[(e, src, names[o]) for o, e, src in node] for node in order]
        node_constants = None
        if constants is not None:
            node_constants = torch.stack([constants[[e for e, _ in node]].sum() for node in inputs])
        columns = [[e * len(names) + o for o, e, _ in node] for node in order]  # where w[e, o] lies in ``ops``
        matrices = node_matrices(self.partial_channels, columns, [[e for e, _ in node] for node in inputs],
                                 ops, edge_weights, node_constants, like=ops)
        return [(t, m, node_constants is not None, [src for _, src in node])
                for t, m, node in zip(terms, matrices, inputs, strict=True)]

    def _run_mixed(self, x: torch.Tensor, plan) -> torch.Tensor:
        noise = self.noise if self.training else None
        drop = None
        if noise is not None and self.path_dropout:
            def drop(out: torch.Tensor) -> torch.Tensor:
                return noise.drop_path(torch.ones((out.shape[0],) + (1,) * (out.dim() - 1), dtype=out.dtype,
                                                  device=out.device), self.path_dropout)
        x = self.stem(x)
        for layer in self.layers:
            x = layer.run_mixed(x, plan, self.partial_channels, drop) if isinstance(layer, NB201Cell) else layer(x)
        x = self.pool(self.head(x)).flatten(1)
        if noise is not None:
            x = noise.dropout(x, self.global_dropout)
        return self.classifier(x)
