"""The DARTS CNN macro network: the 8-cell search super-net and the 20-cell evaluation network.

One class serves both (Liu et al. 2019, Sec. 3.1.1, 3.2 and App. A.1):

- ``DartsCNNNetwork()`` (defaults): the search super-net, C=16, 8 cells, every operation on every
  one of the 14 edges of each cell, batch norms without affine parameters and a BN after each
  pooling operation (DARTS' search network);
- ``DartsCNNNetwork(arch=genotype, C=36, layers=20, auxiliary=True, affine=True, pool_bn=False,
  drop_path_prob=0.2)``: the evaluation network of a genotype, with the auxiliary head after the
  cell at 2/3 of the depth; its parameter count is the reference DARTS network's
  (``count_parameters(net, auxiliary=False)``: 3,349,342 for DARTS V2, DARTS' "3.3M").

Macro structure: a 3x3 convolution stem to ``stem_multiplier * C`` channels; ``layers`` cells, the
ones at ``layers // 3`` and ``2 * layers // 3`` being reduction cells that double the channels;
global average pooling; a linear classifier. Each cell reads the two previous cells' outputs
through 1x1 ReLU-conv-BN preprocessing (a factorized reduction when the previous cell reduced the
resolution) and outputs the concatenation of its output nodes.

The super-net protocol (``lightning_nas.nn.base``): ``net(x, arch)`` runs one path,
``net.forward_weighted(x, weights, active)`` the relaxation (groups ``normal_ops``, ``reduce_ops``
of shape (14, 8) and, for PC-DARTS, ``normal_edges``, ``reduce_edges``), ``net.standalone(arch)`` the
stand-alone network with the path's weights. Both forwards sum each node in one loop
(``DartsCNNCell.run``).

Training-only parts of the evaluation network: ``forward_with_auxiliary`` returns the auxiliary
logits in training mode (None otherwise); drop-path applies in training mode to every operation
output except identities, with the probability set by ``set_drop_path`` (see
``drop_path_schedule``).

GDAS' DARTS-space search network (Dong & Yang's xautodl port, ``NASNetworkGDAS``) is this class with
``layers=6, pool_bn=False, conv_bias=True, head="bn_relu"`` (``recipes/darts_cnn_gdas.yaml``,
``docs/darts_cnn.md``); its estimator is ``straight_through = "sampled"``.

The cell output (``output``): ``concat`` of the output nodes (DARTS), or ``loose_ends`` - the
intermediate nodes no other node reads, concatenated and passed through a 1x1 ReLU-conv-BN to C
channels, with one shared weight over all intermediate nodes (the unused nodes' slices see zeros).
The latter is ENAS' combination of several inputs (Pham et al. 2018, App.), which the ENAS
strategy asks for with its ``combine_loose_ends`` option (every convolution already runs
ReLU -> conv -> BN here, ENAS' other trick). It applies to single-path forwards (and stand-alone
training), not to the relaxation, where no node is a loose end.
"""
from __future__ import annotations

from typing import Callable, Literal, Mapping, Optional

import torch
from torch import nn

from lightning_nas.errors import RecipeError
from lightning_nas.nn.base import (Active, SuperNet, active_options, check_partial_channels, passes_through, stateless_key)
from lightning_nas.nn.darts_ops import (ELASTIC_KERNELS, FactorizedReduce, ReLUConvBN, build_elastic, build_op,
                                          drop_path, elastic_families)
from lightning_nas.nn.partial import assemble, node_matrices, operation_outputs, split_source
from lightning_nas.registry import NETWORKS
from lightning_nas.spaces.darts_cnn import (CELL_TYPES, DartsCNNSpace, Genotype,
                                            architecture_map, cell_edges)

#: edge(cell, edge index, input) -> output or None (adds nothing)
Edge = Callable[["DartsCNNCell", int, torch.Tensor], Optional[torch.Tensor]]
#: a cell's output: the concatenation of its output nodes, or its loose ends through a 1x1 convolution
CellOutput = Literal["concat", "loose_ends"]
#: what runs between the last cell and the global pooling: nothing (DARTS) or BN + ReLU (xautodl)
Head = Literal["darts", "bn_relu"]
#: who owns an operation's weights: each edge (DARTS) or the node the edge enters (Yu et al. Table 1)
OpsOn = Literal["edge", "node"]


def op_keys(names: list[str]) -> list[str]:
    """Module keys of the operations on one edge: the name, suffixed ``_2``, ``_3`` for repeats
    (published cells such as NASNet apply the same operation twice to one input)."""
    keys = []
    for i, name in enumerate(names):
        count = names[:i].count(name)
        keys.append(name if count == 0 else f"{name}_{count + 1}")
    return keys


def drop_path_schedule(epoch: int, max_epochs: int, final: float = 0.2) -> float:
    """DARTS' linear drop-path schedule: ``final * epoch / max_epochs`` at the start of ``epoch``
    (0-based), i.e. 0 in the first epoch, approaching ``final`` in the last."""
    if max_epochs <= 0:
        raise ValueError(f"max_epochs must be positive, got {max_epochs}")
    return final * min(max(epoch, 0), max_epochs) / max_epochs


def owners(edges: tuple[tuple[int, int], ...], reduction: bool, ops_on: OpsOn) -> list[int]:
    """Per edge (``cell_edges`` order), the edge whose operation modules it runs: ``edge`` - its own;
    ``node`` - the first edge into the same node with the same stride (Yu et al., "How to Train Your
    Super-Net", Table 1, "Op on Node/Edge": a node owns its operations; in a reduction cell the
    stride-2 operations reading the cell inputs and the stride-1 ones reading intermediate nodes
    cannot share weights, so a node owns one set of each)."""
    if ops_on == "edge":
        return list(range(len(edges)))
    if ops_on != "node":
        raise RecipeError(f"model.network.ops_on must be 'edge' or 'node', got {ops_on!r}")
    first: dict[tuple[int, bool], int] = {}
    return [first.setdefault((target, reduction and source < 2), e) for e, (target, source) in enumerate(edges)]


def loose_ends(arch: Genotype, label: str) -> tuple[int, ...]:
    """Intermediate nodes of cell ``label`` that no node of the cell reads (ENAS' cell output)."""
    nodes = arch.cell(label)
    read = {source for node in nodes for _, source in node}
    return tuple(i for i in range(2, len(nodes) + 2) if i not in read)


class DartsCNNCell(nn.Module):
    """One cell. ``edge_ops[e]`` lists the operations built on edge ``e`` (``cell_edges`` order);
    ``concat`` the nodes the output concatenates; ``partial_channels`` K builds the operations
    with C/K channels (relaxed forward only); ``combine_loose_ends`` the 1x1 combination of the
    loose ends as the output (``output: loose_ends``)."""

    def __init__(self, c_prev_prev: int, c_prev: int, channels: int, reduction: bool, reduction_prev: bool,
                 num_nodes: int, edge_ops: Mapping[int, list[str]], concat: tuple[int, ...], affine: bool,
                 track_running_stats: bool, pool_bn: bool, partial_channels: int = 1, combine_loose_ends: bool = False,
                 conv_bias: bool = False, elastic: Optional[Mapping[str, tuple[int, ...]]] = None,
                 ops_on: OpsOn = "edge") -> None:
        super().__init__()
        self.reduction, self.label = reduction, "reduce" if reduction else "normal"
        self.num_nodes, self.concat, self.channels = num_nodes, concat, channels
        bn = dict(affine=affine, track_running_stats=track_running_stats, bias=conv_bias)
        self.preprocess0 = (FactorizedReduce(c_prev_prev, channels, **bn) if reduction_prev
                            else ReLUConvBN(c_prev_prev, channels, 1, 1, 0, **bn))
        self.preprocess1 = ReLUConvBN(c_prev, channels, 1, 1, 0, **bn)
        op_channels = channels // partial_channels
        edges = cell_edges(num_nodes)
        #: per edge, operation key -> (owner edge, module key there, kernel size of an elastic module or None)
        self.routes: dict[int, dict[str, tuple[int, str, Optional[int]]]] = {}
        elastic = elastic or {}
        owner = owners(edges, reduction, ops_on)
        modules: dict[int, dict[str, nn.Module]] = {}
        for e, names in sorted(edge_ops.items()):
            _, source = edges[e]
            stride = 2 if reduction and source < 2 else 1
            held, routes = modules.setdefault(owner[e], {}), {}
            for key, name in zip(op_keys(list(names)), names, strict=True):
                family, size = ELASTIC_KERNELS.get(name, (None, None))
                if family in elastic:  # OFA: one module per (edge, family), built at the family's sizes
                    if family not in held:
                        held[family] = build_elastic(family, elastic[family], op_channels, stride, affine,
                                                     track_running_stats, conv_bias)
                    routes[key] = (owner[e], family, size)
                else:
                    if key not in held:
                        held[key] = build_op(name, op_channels, stride, affine, track_running_stats, pool_bn, conv_bias)
                    routes[key] = (owner[e], key, None)
            self.routes[e] = routes
        #: the operation modules, keyed by the edge that owns them (every edge, or the first per node and stride)
        self.edges = nn.ModuleDict({str(k): nn.ModuleDict(held) for k, held in sorted(modules.items())})
        #: For each intermediate node, the (edge index, input node) pairs that feed it.
        self.inputs = [[(e, source) for e, (target, source) in enumerate(edges) if target == node and e in edge_ops]
                       for node in range(2, num_nodes + 2)]
        self.combine = ReLUConvBN(num_nodes * channels, channels, 1, 1, 0, **bn) if combine_loose_ends else None

    @property
    def multiplier(self) -> int:
        """Output channels / C."""
        return 1 if self.combine is not None else len(self.concat)

    def run(self, s0: torch.Tensor, s1: torch.Tensor, edge: Edge, loose: Optional[tuple[int, ...]] = None) -> torch.Tensor:
        """Node i = sum of ``edge(self, e, node_j)`` over its incoming edges; output = concatenation
        of ``concat`` (or ENAS' combination of the ``loose`` ends)."""
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for inputs in self.inputs:
            total = None
            for e, source in inputs:
                out = edge(self, e, states[source])
                if out is not None:
                    total = out if total is None else total + out
            if total is None or total.dim() == 0:
                # every edge chose `none` (a GDAS sample): zeros, plus the 0-dim constant that `mix`
                # returns in GDAS' reference straight-through mode
                ref = states[1]
                size = [(s + 1) // 2 for s in ref.shape[2:]] if self.reduction else list(ref.shape[2:])
                zeros = ref.new_zeros(ref.shape[0], self.channels, *size)
                total = zeros if total is None else zeros + total
            states.append(total)
        return self.output(states, loose)

    def output(self, states: list[torch.Tensor], loose: Optional[tuple[int, ...]] = None) -> torch.Tensor:
        """The cell output from its node values: the concatenation of ``concat``, or the combination
        of the ``loose`` ends."""
        if self.combine is None:
            return torch.cat([states[i] for i in self.concat], dim=1)
        if loose is None:
            raise ValueError("output='loose_ends': the cell output combines loose ends, which only a single path "
                             "defines; the relaxed forward cannot run with it")
        parts = [states[i] if i in loose else torch.zeros_like(states[i]) for i in range(2, self.num_nodes + 2)]
        return self.combine(torch.cat(parts, dim=1))

    def operation(self, e: int, key: str, h: torch.Tensor) -> torch.Tensor:
        """Operation ``key`` of edge ``e`` on ``h`` (an elastic module at the operation's kernel size)."""
        owner, module_key, size = self.routes[e][key]
        module = self.edges[str(owner)][module_key]
        return module(h) if size is None else module(h, size)

    def is_identity(self, e: int, key: str) -> bool:
        owner, module_key, _ = self.routes[e][key]
        return isinstance(self.edges[str(owner)][module_key], nn.Identity)

    def run_mixed(self, s0: torch.Tensor, s1: torch.Tensor, plan: list, k: int = 1) -> torch.Tensor:
        """The relaxed cell, one node at a time (``DartsCNNNetwork.forward_weighted``): ``plan`` holds
        per node its (edge, source, operation key) terms, their weights (edge weight times operation
        weight) and GDAS' constant, or with partial channels (PC-DARTS, K = ``k``) the node's matrix,
        whether it carries a constant, and the sources of the bypassed channels. All terms of a node
        are stacked and contracted in one product; with partial channels each source is split once,
        its bypass pooled once where the reduction halves the resolution, and the node, shuffled, is
        one product over its operations' outputs and its sources' bypasses (``lightning_nas.nn.partial``:
        the sum of the authors' per-edge ``beta_e * shuffle(cat(mixed_e, bypass_e))``, Xu et al. 2020,
        Eq. 2 and 4, by linearity). A parameter-free operation, or the parameter-free pooling in front
        of a search-time BN, runs once per source node and configuration for all the edges reading it.
        With partial channels, the edges of a node that apply one operation (with one stride) run as
        one kernel on their sources' C/K channels concatenated (``lightning_nas.nn.grouped``)."""
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        shared: dict[tuple[int, str], torch.Tensor] = {}
        stateless: dict[tuple, torch.Tensor] = {}

        def apply(e: int, key: str, src: int) -> torch.Tensor:
            owner, module_key, size = self.routes[e][key]  # op on node / OFA: the module that serves the edge
            module = self.edges[str(owner)][module_key]
            if size is not None:  # an elastic (OFA) module at this operation's kernel size
                return module(source(src, "input"), size)
            head, tail = module, None
            if isinstance(module, nn.Sequential) and len(module) == 2 and stateless_key(module[0]) is not None:
                head, tail = module[0], module[1]  # pooling, then the edge's own BN
            key = stateless_key(head)
            if key is None:
                return module(source(src, "input"))
            if (src, key) not in stateless:
                stateless[(src, key)] = head(source(src, "input"))
            return stateless[(src, key)] if tail is None else tail(stateless[(src, key)])

        def source(src: int, what: str) -> torch.Tensor:
            if (src, what) not in shared:
                h = states[src]
                if k == 1:
                    return h
                # the stride-2 operations of a reduction cell halve the mixed part: pool the bypass
                shared[(src, "input")], shared[(src, "bypass")] = split_source(h, k, self.reduction and src < 2)
            return shared[(src, what)]

        def module(e: int, key: str) -> Optional[nn.Module]:
            owner, module_key, size = self.routes[e][key]
            return None if size is not None else self.edges[str(owner)][module_key]  # elastic: edge by edge

        ref = states[1]
        size = [(s + 1) // 2 for s in ref.shape[2:]] if self.reduction else list(ref.shape[2:])
        kernels: dict = {}
        for terms, w, constant, bypass in plan:
            if bypass is not None:  # PC-DARTS: an operation's edges as one kernel, the node in one product
                outputs = operation_outputs(terms, module, lambda e, src, key: apply(e, key, src),
                                            lambda src: source(src, "input"), kernels)
                states.append(assemble(w, outputs, [source(src, "bypass") for src in bypass], constant))
                continue
            outputs = [apply(e, key, src) for e, src, key in terms]
            total = contract(w, outputs)
            if constant is not None:
                total = constant if total is None else total + constant
            if total is None or total.dim() == 0:
                zeros = ref.new_zeros(ref.shape[0], self.channels, *size)
                total = zeros if total is None else zeros + total
            states.append(total)
        return self.output(states)


class AuxiliaryHead(nn.Module):
    """The CIFAR auxiliary classifier (Szegedy et al. 2016 as in NASNet/DARTS): ReLU, 5x5 average
    pooling with stride 3 (8x8 -> 2x2), 1x1 conv to 128, BN, ReLU, 2x2 conv to 768, BN, ReLU,
    linear. Other resolutions (small fixture images) are pooled adaptively to 2x2."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(inplace=False),
            nn.Conv2d(128, 768, 2, bias=False), nn.BatchNorm2d(768), nn.ReLU(inplace=False))
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(x)
        if all((s - 5) // 3 + 1 == 2 for s in x.shape[2:]):
            x = nn.functional.avg_pool2d(x, 5, stride=3, padding=0, count_include_pad=False)
        else:
            x = nn.functional.adaptive_avg_pool2d(x, 2)
        return self.classifier(self.features(x).flatten(1))


@NETWORKS.register("darts_cnn")
class DartsCNNNetwork(SuperNet):
    """DARTS CNN network; the super-net when ``arch`` is None, else the stand-alone net of ``arch``.

    Args:
        space: a ``DartsCNNSpace`` (default: 4 nodes).
        C, layers, stem_multiplier: initial channels, number of cells, stem width factor
            (search: 16, 8, 3; evaluation: 36, 20, 3).
        auxiliary: build the auxiliary head after cell ``2 * layers // 3``; ``auxiliary_weight`` is
            the weight of its loss (0.4), read by the strategy.
        drop_path_prob: the final drop-path probability; the current one starts at 0 and is set by
            ``set_drop_path`` / ``update_drop_path`` (DARTS: linear in the epoch).
        affine, track_running_stats: the cells' batch norms (search: affine=False).
        pool_bn: a BN (affine=False) after each pooling operation (DARTS' search MixedOp).
        conv_bias: the cells' convolutions that feed a BN carry a bias (xautodl's DARTS-space search
            network, ``bias=not affine``; DARTS: none). The stem keeps none (xautodl's neither).
        head: ``darts`` - global pooling of the last cell, then the classifier (DARTS); ``bn_relu`` -
            a BN (affine, running statistics) and a ReLU before the pooling (xautodl's
            ``NASNetworkGDAS``, the DARTS-space GDAS of Dong & Yang).
        partial_channels: PC-DARTS' K (super-net only, relaxed forward).
        output: the cell output, ``concat`` (DARTS) or ``loose_ends`` (ENAS' combination; module docstring).
        ofa_kernel: OFA's elastic kernel (Cai et al. 2020, Sec. 3.2; the "OFA Kernel" factor of Yu et al.,
            "How to Train Your Super-Net", Table 1): on every edge, the operations of one family with
            several kernel sizes (sep_conv_3x3/5x5, dil_conv_3x3/5x5) are one module whose largest
            depthwise kernels serve the smaller sizes through their transformed centres
            (``darts_ops.ElasticDepthwise``); pointwise convolutions and BNs are shared too. Off by
            default (DARTS builds every size apart); refused when no family has two sizes. A
            stand-alone network built with it keeps the family module (the path's own function).
        ops_on: ``edge`` (default, DARTS: every edge owns its operations) or ``node`` (Yu et al., "How to
            Train Your Super-Net", Table 1, "Op on Node/Edge"): a node owns one set of operations
            (per stride in a reduction cell), shared by every edge entering it, so two inputs of a
            node that pick the same operation run the same weights (``owners``). Yu et al.'s DARTS
            code shares per input slot of a node instead, which the relaxation (every input of a node
            mixed at once) has no counterpart of.
    """

    supports_partial_channels = True
    output_modes = ("concat", "loose_ends")
    tiny_options = {"C": 4, "layers": 3}
    #: GDAS on this space as xautodl's DARTS-space port (``search_model_gdas_nasnet.py`` with
    #: ``NASNetSearchCell.forward_gdas``) computes it: each edge returns only the sampled
    #: operation times its straight-through weight
    straight_through = "sampled"

    def __init__(self, space: Optional[DartsCNNSpace] = None, num_classes: int = 10, in_channels: int = 3,
                 arch: Optional[Genotype] = None, C: int = 16, layers: int = 8, stem_multiplier: int = 3,
                 auxiliary: bool = False, auxiliary_weight: float = 0.4, drop_path_prob: float = 0.0,
                 affine: bool = False, track_running_stats: bool = True, pool_bn: bool = True,
                 partial_channels: int = 1, output: CellOutput = "concat", conv_bias: bool = False,
                 head: Head = "darts", ofa_kernel: bool = False, ops_on: OpsOn = "edge") -> None:
        super().__init__()
        if C < 1 or layers < 1 or stem_multiplier < 1:
            raise ValueError(f"DARTS CNN network needs C, layers, stem_multiplier >= 1, got {C}, {layers}, {stem_multiplier}")
        check_partial_channels(C, partial_channels, arch)
        if output not in self.output_modes:
            raise ValueError(f"output must be one of {', '.join(self.output_modes)}, got {output!r}")
        loose_ends = output == "loose_ends"
        if partial_channels > 1 and loose_ends:
            raise ValueError("output='loose_ends' applies to single-path forwards; PC-DARTS (partial_channels > 1) is "
                             "relaxed only")
        if not 0.0 <= drop_path_prob < 1.0:
            raise ValueError(f"drop_path_prob must be in [0, 1), got {drop_path_prob}")
        if head not in ("darts", "bn_relu"):
            raise ValueError(f"head must be 'darts' or 'bn_relu', got {head!r}")
        self.space = space if space is not None else DartsCNNSpace()
        self.arch = arch
        #: OFA's elastic kernel: family -> kernel sizes sharing one module per edge (empty: off)
        self.elastic = elastic_families(self.space.cell_operations) if ofa_kernel else {}
        if ofa_kernel and not self.elastic:
            raise RecipeError(f"model.network.ofa_kernel needs operations of one family with several kernel sizes "
                              f"(sep_conv_3x3/5x5, dil_conv_3x3/5x5); this space has {list(self.space.cell_operations)}")
        self.partial_channels, self.loose_ends = partial_channels, loose_ends
        self.auxiliary_weight = auxiliary_weight
        self.drop_path_prob = drop_path_prob
        self.current_drop_path = 0.0
        #: the relaxation's columns (``none`` first), the space's operations
        self.operations: tuple[str, ...] = self.space.operations
        if arch is not None:
            amap = architecture_map(arch)
            cell_spec = {label: (len(arch.cell(label)), amap[label], arch.concat(label))
                         for label in CELL_TYPES}
        else:
            n = self.space.num_nodes
            every = {e: list(self.space.cell_operations) for e in range(len(cell_edges(n)))}
            cell_spec = {label: (n, every, tuple(range(2, n + 2))) for label in CELL_TYPES}

        c_curr = stem_multiplier * C
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_curr, 3, padding=1, bias=False), nn.BatchNorm2d(c_curr))
        c_prev_prev, c_prev, c_curr = c_curr, c_curr, C
        self.reductions = sorted({layers // 3, 2 * layers // 3})
        self.auxiliary_index = 2 * layers // 3
        self.cells = nn.ModuleList()
        self.auxiliary_head: Optional[AuxiliaryHead] = None
        reduction_prev = False
        for i in range(layers):
            reduction = i in self.reductions
            if reduction:
                c_curr *= 2
            num_nodes, edge_ops, concat = cell_spec["reduce" if reduction else "normal"]
            cell = DartsCNNCell(c_prev_prev, c_prev, c_curr, reduction, reduction_prev, num_nodes, edge_ops, concat,
                                affine, track_running_stats, pool_bn, partial_channels, loose_ends, conv_bias,
                                self.elastic, ops_on)
            self.cells.append(cell)
            reduction_prev = reduction
            c_prev_prev, c_prev = c_prev, cell.multiplier * c_curr
            if auxiliary and i == self.auxiliary_index:
                self.auxiliary_head = AuxiliaryHead(c_prev, num_classes)
        #: BN + ReLU before the pooling (``head: bn_relu``), else nothing (no state-dict keys)
        self.head_act: nn.Module = (nn.Sequential(nn.BatchNorm2d(c_prev), nn.ReLU(inplace=False)) if head == "bn_relu"
                                    else nn.Identity())
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    # ------------------------------------------------------------------ drop-path
    def set_drop_path(self, prob: float) -> None:
        """The drop-path probability of the following training forwards (0 disables it)."""
        if not 0.0 <= prob < 1.0:
            raise ValueError(f"drop-path probability must be in [0, 1), got {prob}")
        self.current_drop_path = float(prob)

    def update_drop_path(self, epoch: int, max_epochs: int) -> float:
        """Set the probability of ``epoch`` by ``drop_path_schedule`` towards ``drop_path_prob``; returns it."""
        prob = drop_path_schedule(epoch, max_epochs, self.drop_path_prob)
        self.set_drop_path(prob)
        return prob

    # ------------------------------------------------------------------ forwards
    def _run(self, x: torch.Tensor, edge: Edge, arch: Optional[Genotype]) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        loose = {label: loose_ends(arch, label) for label in CELL_TYPES} if (arch is not None and self.loose_ends) else {}
        s0 = s1 = self.stem(x)
        aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell.run(s0, s1, edge, loose.get(cell.label))
            if i == self.auxiliary_index and self.auxiliary_head is not None and self.training:
                aux = self.auxiliary_head(s1)
        return self.classifier(self.global_pooling(self.head_act(s1)).flatten(1)), aux

    def _checked(self, arch: Optional[Genotype]) -> Genotype:
        arch = self.path_architecture(arch)
        if self.arch is None:
            self.space.check(arch)
        elif arch != self.arch:
            raise ValueError(f"this stand-alone network computes {self.arch}, not {arch}")
        return arch

    def forward_with_auxiliary(self, x: torch.Tensor,
                               arch: Optional[Genotype] = None) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """(logits, auxiliary logits); the latter only in training mode with ``auxiliary=True``, else None."""
        arch = self._checked(arch)
        if self.partial_channels > 1:  # PC-DARTS' super-net has relaxed edges only
            return self.path_as_relaxation(x, arch), None
        amap = architecture_map(arch)
        keys = {label: {e: op_keys(names) for e, names in edges.items()} for label, edges in amap.items()}
        prob = self.current_drop_path if self.training else 0.0

        def edge(cell: DartsCNNCell, e: int, h: torch.Tensor) -> Optional[torch.Tensor]:
            total = None
            for key in keys[cell.label].get(e, ()):
                out = cell.operation(e, key, h)
                if prob > 0.0 and not cell.is_identity(e, key):
                    out = drop_path(out, prob)
                total = out if total is None else total + out
            return total

        return self._run(x, edge, arch)

    def forward(self, x: torch.Tensor, arch: Optional[Genotype] = None) -> torch.Tensor:
        return self.forward_with_auxiliary(x, arch)[0]

    def forward_weighted(self, x: torch.Tensor, weights: Mapping[str, torch.Tensor], active: Active = None) -> torch.Tensor:
        """Edge e of cell type c returns ``c_edges[e] * sum_{o in active} c_ops[e, o] * op_o(h)`` (DARTS
        Eq. 2; with partial channels PC-DARTS Eq. 2 and 4: the edge weight scales the whole
        partial-channel output, bypass included, as the authors' ``weights2[j] * MixedOp(h)``).
        Columns follow ``space.operations``. A node is computed at once (``DartsCNNCell.run_mixed``:
        one stacked contraction over every operation of every incoming edge, the weights indexed once
        per cell type), so values agree with the per-edge sum within float rounding; one-hot weights
        still give the path bit for bit."""
        if self.arch is not None:
            raise ValueError("a stand-alone DARTS CNN network has no relaxation; use the super-net")
        if self.loose_ends:
            raise ValueError("output='loose_ends': the relaxed forward is not defined (loose ends need one path)")
        plans = {label: self._plan(label, weights, active) for label in CELL_TYPES}
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell.run_mixed(s0, s1, plans[cell.label], self.partial_channels)
        return self.classifier(self.global_pooling(self.head_act(s1)).flatten(1))

    def _plan(self, label: str, weights: Mapping[str, torch.Tensor], active: Active) -> list:
        """``DartsCNNCell.run_mixed``'s plan for cell type ``label``, shared by its cells: per node the
        (edge, source, key) terms of the active operations other than ``none`` (column 0), their
        weights ``edges[e] * ops[e, o]`` (one index for the whole cell type, split per node), GDAS'
        constant (the inactive weights, edge-scaled) and PC-DARTS' bypass (sources, edge weights)."""
        group, names = f"{label}_ops", self.operations
        ops, edge_weights = weights[group], weights.get(f"{label}_edges")
        rows = [list(active_options(active, group, e, len(names))) for e in range(ops.shape[0])]
        if edge_weights is not None:
            ops = ops * edge_weights[:, None]
        constants = None
        if passes_through(active, group):
            inactive = torch.ones_like(ops, dtype=torch.bool)
            for e, options in enumerate(rows):
                inactive[e, options] = False
            constants = (ops * inactive.to(ops.dtype)).sum(dim=1)
        inputs = next(cell for cell in self.cells if cell.label == label).inputs
        node_constants = [None] * len(inputs)
        if constants is not None:
            node_constants = [constants[[e for e, _ in node]].sum() for node in inputs]
        if self.partial_channels > 1:
            # operation by operation (a reduction cell's stride-2 edges first), so that the edges of one
            # operation are consecutive and run as one kernel (``operation_outputs``)
            strided = label == "reduce"
            order = [sorted(((o, e, src) for e, src in node for o in rows[e] if o),
                            key=lambda t: (t[0], not (strided and t[2] < 2), t[1])) for node in inputs]
            terms = [[(e, src, names[o]) for o, e, src in node] for node in order]
            stacked = torch.stack(node_constants) if constants is not None else None
            matrices = node_matrices(self.partial_channels, [[e * len(names) + o for o, e, _ in node] for node in order],
                                     [[e for e, _ in node] for node in inputs], ops, edge_weights, stacked, like=ops)
            return [(t, m, constants is not None, [src for _, src in node])
                    for t, m, node in zip(terms, matrices, inputs, strict=True)]
        terms = [[(e, src, names[o]) for e, src in node for o in rows[e] if o] for node in inputs]
        flat = [(e, o) for node in inputs for e, _ in node for o in rows[e] if o]
        w_all = ops[[e for e, _ in flat], [o for _, o in flat]] if flat else None
        split = w_all.split([len(t) for t in terms]) if w_all is not None else [None] * len(terms)
        return [(t, w if t else None, c, None) for t, w, c in zip(terms, split, node_constants, strict=True)]


def contract(weights: Optional[torch.Tensor], outputs: list[torch.Tensor]) -> Optional[torch.Tensor]:
    """``sum_i weights[i] * outputs[i]`` in one stacked product (a plain sum when ``weights`` is None);
    None for no outputs. A one-hot ``weights`` gives the chosen output exactly."""
    if not outputs:
        return None
    if weights is None:
        total = outputs[0]
        for out in outputs[1:]:
            total = total + out
        return total
    if len(outputs) == 1:
        return weights[0] * outputs[0]
    stacked = torch.stack(outputs)
    return torch.tensordot(weights.to(stacked.dtype), stacked, dims=1)  # autocast: outputs may be bf16


def count_parameters(net: nn.Module, auxiliary: bool = True) -> int:
    """Number of parameters; ``auxiliary=False`` leaves out the auxiliary head, as DARTS' reference
    code does when it reports a network's size."""
    return sum(p.numel() for name, p in net.named_parameters() if auxiliary or not name.startswith("auxiliary_head."))
