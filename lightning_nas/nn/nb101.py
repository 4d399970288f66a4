"""The NAS-Bench-101 network (Ying et al. 2019), stand-alone and as the n-vertex super-net (Yu et al. 2020).

Stand-alone (``NB101Network(space, arch=cell)``), exactly the benchmark's model: a 3x3
conv-BN-ReLU stem with 128 channels; 3 stacks of 3 cells, a 2x2 max-pool and doubled channels
before stacks 2 and 3; global average pooling; a linear classifier. Inside a cell (after pruning):

- vertex widths follow the benchmark's channel splitting (``vertex_channels``): the output's
  channels are divided among the intermediate vertices feeding it (the first ones get the
  remainder), every other vertex takes the largest width of its successors;
- a vertex sums its interior predecessors, each truncated to its width, and a 1x1 conv-BN-ReLU
  projection of the cell input when the input feeds it; then applies its operation
  (conv3x3/conv1x1-BN-ReLU at its width, or a 3x3 max-pool);
- the output concatenates the vertices feeding it and adds a 1x1 projection of the cell input when
  the input feeds the output (with no intermediate vertex feeding it, the projection is the output).

Only modules the forward pass uses exist, so ``sum(p.numel() for p in net.parameters())`` is the
benchmark's ``trainable_parameters`` (conv weights without bias, BN scale and shift, classifier).

Super-net (``arch=None``): every intermediate vertex slot holds a max-width projection and every
operation, the output a projection; a path slices each weight to the width the benchmark gives
that vertex in that cell. The space's ``channels`` switch picks how (see ``NB101Space``): ``split``
keeps one weight set per in-degree of the output (a sub-space in which widths are fixed),
``fixed`` takes the first channels, ``shuffle`` a random chunk per training step (first channels
in evaluation), ``interpolate`` averages neighbouring channels (``Interpolate``; every path, training
and evaluation). ``standalone(arch)`` slices the super-net's weights into the benchmark network
(not for ``interpolate``, whose paths are no benchmark networks).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from lightning_nas.nn.base import Active, SuperNet
from lightning_nas.registry import NETWORKS
from lightning_nas.spaces.nb101 import CONV1X1, CONV3X3, MAXPOOL3X3, NB101Cell, NB101Space

@dataclass(frozen=True)
class Interpolate:
    """A channel selection that averages neighbouring channels down to ``width`` (``interpolate_channels``)."""

    width: int


#: a channel selection: None (all), an int c (the first c), an index tensor (shuffle) or an Interpolate
Select = Union[None, int, torch.Tensor, Interpolate]


def interpolate_channels(t: torch.Tensor, size: int, dim: int = 1) -> torch.Tensor:
    """``t`` with its ``dim`` axis of C entries averaged down to ``size``: entry i is the mean of entries
    floor(i C / size) .. ceil((i + 1) C / size) - 1 (adaptive average pooling along the channels), the
    "moving average across neighboring channels" with which Yu et al. (Sec. 4.5) describe Dong & Yang's
    (2019) interpolation of C_max channels into C. ``size == C`` returns ``t``."""
    if size == t.shape[dim]:
        return t
    moved = t.movedim(dim, -1)
    pooled = F.adaptive_avg_pool1d(moved.reshape(-1, 1, moved.shape[-1]), size)
    return pooled.reshape(*moved.shape[:-1], size).movedim(-1, dim)


def vertex_channels(c_in: int, c_out: int, matrix: Sequence[Sequence[int]]) -> list[int]:
    """Width of every vertex of a pruned cell, by the benchmark's rule (``compute_vertex_channels``)."""
    n = len(matrix)
    widths = [0] * n
    widths[0], widths[-1] = c_in, c_out
    if n == 2:
        return widths
    fan_in = sum(matrix[v][n - 1] for v in range(1, n - 1))
    base, extra = divmod(c_out, fan_in)
    for v in range(1, n - 1):
        if matrix[v][n - 1]:
            widths[v] = base + (1 if extra > 0 else 0)
            extra -= 1 if extra > 0 else 0
    for v in range(n - 3, 0, -1):
        if not matrix[v][n - 1]:
            for w in range(v + 1, n - 1):
                if matrix[v][w]:
                    widths[v] = max(widths[v], widths[w])
    return widths


def _take(t: torch.Tensor, sel: Select, dim: int = 0) -> torch.Tensor:
    if sel is None:
        return t
    if isinstance(sel, int):
        return t if sel == t.shape[dim] else t.narrow(dim, 0, sel)
    return t.index_select(dim, sel)


class ConvBnRelu(nn.Module):
    """Conv (no bias, 'same' padding) -> BN -> ReLU, the benchmark's ``conv_bn_relu``; runs on a channel slice."""

    def __init__(self, c_in: int, c_out: int, kernel: int, bn_momentum: float = 0.1, bn_eps: float = 1e-5) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, momentum=bn_momentum, eps=bn_eps)

    def forward(self, x: torch.Tensor, out: Select = None, inp: Select = None) -> torch.Tensor:
        if out is None and inp is None:
            return F.relu(self.bn(self.conv(x)))
        if isinstance(out, Interpolate):
            # Yu et al.'s NB101 code (``DynamicReLUConvBN``): the kernel's input channels averaged to
            # the input's width, the output computed and normalised at full width, then averaged to c
            weight = interpolate_channels(self.conv.weight, x.shape[1], dim=1)
            y = F.relu(self.bn(F.conv2d(x, weight, None, 1, self.conv.padding)))
            return interpolate_channels(y, out.width, dim=1)
        weight = _take(_take(self.conv.weight, out, 0), inp, 1).contiguous()
        y = F.conv2d(x, weight, None, 1, self.conv.padding)
        bn = self.bn
        use_batch = self.training or not bn.track_running_stats
        if isinstance(out, torch.Tensor):
            mean, var = bn.running_mean[out], bn.running_var[out]
            y = F.batch_norm(y, mean, var, bn.weight[out], bn.bias[out], use_batch, bn.momentum, bn.eps)
            if use_batch:
                with torch.no_grad():
                    bn.running_mean[out] = mean
                    bn.running_var[out] = var
        else:
            # prefix slices of the running statistics are views: batch_norm updates them in place
            y = F.batch_norm(y, _take(bn.running_mean, out), _take(bn.running_var, out), _take(bn.weight, out),
                             _take(bn.bias, out), use_batch, bn.momentum, bn.eps)
        return F.relu(y)


class NB101CellModule(nn.Module):
    """One NB101 cell (module). ``slots[v]`` lists the operations vertex slot v holds (empty: none);
    ``widths[v]`` the width its modules are built with; ``project[v]`` whether it has an input projection."""

    def __init__(self, c_in: int, c_out: int, slots: Mapping[int, Sequence[str]], widths: Mapping[int, int],
                 project: Sequence[int], output_projection: bool, bn_momentum: float) -> None:
        super().__init__()
        self.c_in, self.c_out = c_in, c_out
        self.proj = nn.ModuleDict({str(v): ConvBnRelu(c_in, widths[v], 1, bn_momentum) for v in project})
        self.ops = nn.ModuleDict()
        for v, ops in slots.items():
            convs = {op: ConvBnRelu(widths[v], widths[v], 3 if op == CONV3X3 else 1, bn_momentum)
                     for op in ops if op in (CONV3X3, CONV1X1)}
            if convs:
                self.ops[str(v)] = nn.ModuleDict(convs)
        self.out_proj = ConvBnRelu(c_in, c_out, 1, bn_momentum) if output_projection else None

    def forward(self, x: torch.Tensor, cell: NB101Cell, select: Optional[dict[int, Select]] = None) -> torch.Tensor:
        """Run the pruned ``cell`` (vertex indices as in ``cell``); ``select[v]`` the channels of slot v."""
        m, n, live = cell.matrix, cell.num_vertices, cell.live
        pruned = cell.pruned()
        widths = dict(zip(live, vertex_channels(self.c_in, self.c_out, pruned.matrix), strict=True))
        select = select or {}
        tensors: dict[int, torch.Tensor] = {0: x}
        parts = []
        for v in live[1:-1]:
            w, sel = widths[v], select.get(v, widths[v])
            h = None
            for u in live[1:]:
                if u >= v:
                    break
                if m[u][v]:
                    t = tensors[u] if tensors[u].shape[1] == w else tensors[u][:, :w]
                    h = t if h is None else h + t
            if m[0][v]:
                t = self.proj[str(v)](x, sel)
                h = t if h is None else h + t
            op = cell.ops[v]
            if op == MAXPOOL3X3:
                y = F.max_pool2d(h, 3, 1, 1)
            else:
                y = self.ops[str(v)][op](h, sel, sel)
            tensors[v] = y
            if m[v][n - 1]:
                parts.append(y)
        if not parts:
            return self.out_proj(x)
        out = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        if m[0][n - 1]:
            out = out + self.out_proj(x)
        return out


@NETWORKS.register("nb101")
class NB101Network(SuperNet):
    """The NB101 network: benchmark defaults ``stem=128``, ``num_stacks=3``, ``cells_per_stack=3``.

    ``arch=None`` builds the super-net of ``space`` (its ``num_vertices`` and ``channels`` switch);
    ``arch=cell`` the stand-alone network of ``cell`` (any valid NB101 cell, at most the space's
    vertices when it comes from a super-net). ``bn_momentum`` is PyTorch's (the benchmark's TF decay
    0.997 is ``bn_momentum=0.003``). Small CPU configurations: ``stem=8, num_stacks=1, cells_per_stack=1``.
    """

    tiny_options = {"stem": 4, "num_stacks": 1, "cells_per_stack": 1}

    def __init__(self, space: Optional[NB101Space] = None, num_classes: int = 10, in_channels: int = 3,
                 stem: int = 128, num_stacks: int = 3, cells_per_stack: int = 3, bn_momentum: float = 0.1,
                 arch: Optional[NB101Cell] = None) -> None:
        super().__init__()
        if stem < 1 or num_stacks < 1 or cells_per_stack < 1:
            raise ValueError(f"NB101 network needs stem, num_stacks, cells_per_stack >= 1, got {stem}, {num_stacks}, {cells_per_stack}")
        self.space = space if space is not None else NB101Space()
        self.arch = arch
        self.mode = self.space.channels
        if arch is not None:
            arch.check()
        self.stem = ConvBnRelu(in_channels, stem, 3, bn_momentum)
        self.cells = nn.ModuleList()
        self.downsample_before: list[bool] = []
        channels = c_in = stem
        for s in range(num_stacks):
            if s > 0:
                channels *= 2
            for i in range(cells_per_stack):
                self.cells.append(self._build_cell(c_in, channels, bn_momentum))
                self.downsample_before.append(s > 0 and i == 0)
                c_in = channels
        self.classifier = nn.Linear(channels, num_classes)

    def _groups(self, arch: Optional[NB101Cell]) -> list[int]:
        n = self.space.num_vertices
        if arch is not None:
            return [self.space.output_in_degree(arch)] if self.mode == "split" else [0]
        return list(range(0, n - 1)) if self.mode == "split" else [0]

    def _build_cell(self, c_in: int, c_out: int, bn_momentum: float) -> nn.Module:
        arch = self.arch
        groups = nn.ModuleDict()
        for k in self._groups(arch):
            if arch is None:
                n = self.space.num_vertices
                inner = range(1, n - 1) if (self.mode != "split" or k > 0) else []
                slots = {v: self.space.operations for v in inner}
                widths = {v: c_out for v in inner}
                groups[f"k{k}"] = NB101CellModule(c_in, c_out, slots, widths, list(inner), True, bn_momentum)
            else:
                live, m = arch.live, arch.matrix
                widths = dict(zip(live, vertex_channels(c_in, c_out, arch.pruned().matrix), strict=True))
                inner = live[1:-1]
                groups[f"k{k}"] = NB101CellModule(c_in, c_out, {v: (arch.ops[v],) for v in inner}, widths,
                                                  [v for v in inner if m[0][v]], bool(m[0][-1]), bn_momentum)
        return groups

    def _select(self, arch: NB101Cell, c_in: int, c_out: int) -> dict[int, Select]:
        if self.arch is not None or self.mode not in ("shuffle", "interpolate"):
            return {}
        widths = dict(zip(arch.live, vertex_channels(c_in, c_out, arch.pruned().matrix), strict=True))
        if self.mode == "interpolate":  # in training and evaluation alike: the interpolation is the weight sharing
            return {v: Interpolate(widths[v]) for v in arch.live[1:-1]}
        if not self.training:
            return {}
        return {v: torch.randperm(c_out, device=self.classifier.weight.device)[:widths[v]].sort().values
                for v in arch.live[1:-1]}

    def forward(self, x: torch.Tensor, arch: Optional[NB101Cell] = None) -> torch.Tensor:
        arch = self.path_architecture(arch)
        if self.arch is None and arch.num_vertices > self.space.num_vertices:
            raise ValueError(f"cell {arch} has {arch.num_vertices} vertices; this super-net has {self.space.num_vertices}")
        key = f"k{self._groups(arch)[0]}"
        x = self.stem(x)
        for cell, down in zip(self.cells, self.downsample_before, strict=True):
            if down:
                x = F.max_pool2d(x, 2, 2, ceil_mode=True)
            module = cell[key]
            x = module(x, arch, self._select(arch, module.c_in, module.c_out))
        return self.classifier(x.mean(dim=(2, 3)))

    def forward_weighted(self, x: torch.Tensor, weights: Mapping[str, torch.Tensor], active: Active = None) -> torch.Tensor:
        raise NotImplementedError("the NB101 n-vertex space has no relaxation (vertex widths depend on discrete edges); "
                                  "use nb1shot1 for gradient-based strategies")

    def standalone(self, arch: NB101Cell) -> "NB101Network":
        """The benchmark network of ``arch`` with this super-net's weights, each sliced to its first channels.
        With ``interpolate`` channels a path is no benchmark network (full-width BN, then averaged channels)."""
        if self.arch is None and self.mode == "interpolate":
            raise ValueError("space_options.channels=interpolate: a path averages full-width channels, which no "
                             "benchmark network computes; it has no stand-alone copy (use split, fixed or shuffle)")
        net = type(self)(space=self.space, arch=arch, **self.config)
        shared = self.state_dict()
        state = {}
        for key, value in net.state_dict().items():
            if key not in shared:
                raise ValueError(f"stand-alone key {key} absent from the super-net")
            src = shared[key]
            for dim, size in enumerate(value.shape):
                src = src.narrow(dim, 0, size)
            state[key] = src.clone()
        net.load_state_dict(state)
        return net
