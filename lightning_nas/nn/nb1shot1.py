"""The NAS-Bench-1Shot1 one-shot network (Zela et al. 2020, Sec. 3.1).

Macro: 3x3 conv-BN-ReLU stem with ``C`` channels; ``num_stacks`` stacks of ``cells_per_stack``
cells, a 2x2 max-pool and doubled width before every stack but the first; a 1x1 post-processing
from the last cell's ``m * width`` channels to ``width``; global average pooling; a linear
classifier. The paper's one-shot model uses C = 16 and 3 stacks of 3 cells (the authors'
``--init_channels 16 --layers 9``; the defaults here). Two macros (``macro``):

- ``oneshot1`` (default: the authors' one-shot model, ``optimizers/darts/model_search.py`` of
  automl/nasbench-1shot1, so that curves are comparable with the paper's): the 2x2 max-pool pads
  by 1 (``MaxPool2d(2, 2, padding=1)``: cells see 17x17 and 9x9 on 32x32 inputs); the
  post-processing is ReLU -> 1x1 conv -> BN without affine parameters (torch's default momentum
  0.1); every other BN takes the authors' ``BN_MOMENTUM = 0.997`` as PyTorch's momentum (their
  ``nn.BatchNorm2d(momentum=0.997)``: running statistics are almost those of the last batch).
  1,101,402 parameters for spaces 1-2 and 1,509,594 for space 3.
- ``nb101``: NB101's own macro (``nn/nb101.py``): the max-pool does not pad (cells see 16x16 and
  8x8, TF's "same" pooling), the post-processing is 1x1 conv -> BN (affine) -> ReLU, BN momentum
  0.1 unless ``bn_momentum`` says otherwise. 128 parameters more than ``oneshot1`` (the affine BN).

Cell (m choice blocks of fixed width w, the stack's width): choice block j sums its parents, the
cell input entering through the block's own 1x1 conv-BN-ReLU projection (fixed width w, unlike
NB101's adaptive widths), then applies its mixed operation over conv3x3-BN-ReLU, conv1x1-BN-ReLU
and a 3x3 max-pool. The output concatenates the m blocks (m * w channels), each scaled by its
output weight, plus a 1x1 projection of the cell input scaled by the input's output weight.

- ``forward_weighted``: block j's input is ``sum_i inputs[j, i] * node_i`` over its candidate
  parents (blocks whose parents are forced sum them unweighted), its output
  ``sum_o ops[j, o] * op_o(input)`` (``nn.base.mix``); the cell output
  ``output[0] * proj(x) + concat_j(output[j] * block_j)``.
- ``forward(x, arch)``: the single path: chosen parents summed, the chosen operation, blocks not
  feeding the output concatenated as zeros, loose ends not computed. It equals
  ``forward_weighted(x, space.one_hot(arch))`` bit for bit (one-hot weights multiply by exactly 1
  and add exact zeros).

``wsbn`` (default off): weight-sharing batch normalisation (Luo et al. 2018, "Neural Architecture
Optimization"; a factor of Yu et al., "How to Train Your Super-Net", Table 1 and Sec. 3.1:
"independent running statistics and affine parameters for different incoming edges"): the conv
operations of a choice block keep one BN (running statistics and affine parameters) per parent set
the block can choose, since the block's input - the sum of its parents - has different statistics
for each. Only the single path knows one parent set, so such a network runs ``forward`` (and its
stand-alone copies) only; the relaxation is refused in one line.
"""
from __future__ import annotations

from typing import Callable, Literal, Mapping, Optional

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from lightning_nas.nn.base import Active, SuperNet, active_options, check_partial_channels, mix, passes_through
from lightning_nas.nn.nb101 import ConvBnRelu
from lightning_nas.nn.partial import partial_mix
from lightning_nas.registry import NETWORKS
from lightning_nas.spaces.nb101 import CONV3X3, MAXPOOL3X3
from lightning_nas.spaces.nb1shot1 import NB1Shot1Architecture, NB1Shot1Space


Macro = Literal["oneshot1", "nb101"]
#: per macro: (BN momentum of the stem, projections and operations in PyTorch's convention, max-pool padding)
MACROS: dict[str, tuple[float, int]] = {"oneshot1": (0.997, 1), "nb101": (0.1, 0)}


class ReluConvBn(nn.Module):
    """ReLU -> 1x1 conv -> BN without affine parameters: the authors' post-processing (DARTS'
    ``ReLUConvBN(..., affine=False)``, BN momentum torch's default 0.1)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(F.relu(x)))


def parent_key(parents: tuple[int, ...]) -> str:
    """The ModuleDict key of a parent set (``0_2``: the cell input and block 2)."""
    return "_".join(map(str, parents))


class WSBNConvBnRelu(nn.Module):
    """Conv -> BN -> ReLU: one shared conv, one BN per parent set of the block (WSBN, Luo et al. 2018)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, bn_momentum: float,
                 parent_sets: list[tuple[int, ...]]) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False)
        self.bns = nn.ModuleDict({parent_key(p): nn.BatchNorm2d(c_out, momentum=bn_momentum) for p in parent_sets})

    def forward(self, x: torch.Tensor, parents: tuple[int, ...]) -> torch.Tensor:
        return F.relu(self.bns[parent_key(parents)](self.conv(x)))


class ChoiceBlockCell(nn.Module):
    """One cell; ``ops[j]`` holds the operations block j instantiates, ``proj[j]`` its input projection."""

    def __init__(self, c_in: int, width: int, space: NB1Shot1Space, arch: Optional[NB1Shot1Architecture],
                 bn_momentum: float, partial_channels: int = 1, wsbn: bool = False) -> None:
        super().__init__()
        m = space.num_blocks
        self.wsbn = wsbn
        op_width = width // partial_channels
        self.width, self.m = width, m
        blocks = range(1, m + 1) if arch is None else sorted(arch.live)
        self.proj = nn.ModuleDict({str(j): ConvBnRelu(c_in, width, 1, bn_momentum) for j in blocks
                                   if arch is None or 0 in arch.parents[j - 1]})
        self.ops = nn.ModuleDict()
        for j in blocks:
            names = space.operations if arch is None else (arch.ops[j - 1],)
            sets = (list(itertools.combinations(range(j), space.num_parents[j - 1])) if arch is None
                    else [tuple(arch.parents[j - 1])])
            convs = {op: (WSBNConvBnRelu(op_width, op_width, 3 if op == CONV3X3 else 1, bn_momentum, sets) if wsbn
                          else ConvBnRelu(op_width, op_width, 3 if op == CONV3X3 else 1, bn_momentum))
                     for op in names if op != MAXPOOL3X3}
            if convs:
                self.ops[str(j)] = nn.ModuleDict(convs)
        self.out_proj = (ConvBnRelu(c_in, width * m, 1, bn_momentum)
                         if arch is None or 0 in arch.parents[-1] else None)

    def operation(self, j: int, op: str, h: torch.Tensor, parents: Optional[tuple[int, ...]] = None) -> torch.Tensor:
        """Operation ``op`` of block ``j`` on ``h``; ``parents``: the block's parent set (WSBN's BN)."""
        if op == MAXPOOL3X3:
            return F.max_pool2d(h, 3, 1, 1)
        return self.ops[str(j)][op](h, tuple(parents)) if self.wsbn else self.ops[str(j)][op](h)

    def run(self, x: torch.Tensor, blocks, block_inputs: Callable[[int], list], block_op: Callable[[int, torch.Tensor], torch.Tensor],
            output_weight: Callable[[int], Optional[torch.Tensor]]) -> torch.Tensor:
        """``blocks``: the blocks to compute; ``block_inputs(j)``: (parent, weight or None) pairs;
        ``output_weight(i)``: node i's output weight (None: 1; a missing block is concatenated as zeros)."""
        states: dict[int, torch.Tensor] = {}
        for j in blocks:
            h = None
            for i, w in block_inputs(j):
                t = self.proj[str(j)](x) if i == 0 else states[i]
                t = t if w is None else w * t
                h = t if h is None else h + t
            states[j] = block_op(j, h)
        parts = []
        for j in range(1, self.m + 1):
            if j in states and output_weight(j) is not False:
                w = output_weight(j)
                parts.append(states[j] if w is None else w * states[j])
            else:
                parts.append(x.new_zeros(x.shape[0], self.width, *x.shape[2:]))
        out = torch.cat(parts, dim=1)
        w0 = output_weight(0)
        if w0 is not False and self.out_proj is not None:
            p = self.out_proj(x)
            out = out + (p if w0 is None else w0 * p)
        return out


@NETWORKS.register("nb1shot1")
class NB1Shot1Network(SuperNet):
    """One-shot (``arch=None``) or stand-alone network of a NAS-Bench-1Shot1 space.

    Options: ``C`` stem width (16), ``num_stacks`` (3), ``cells_per_stack`` (3), ``macro``
    (``oneshot1``: the authors' one-shot model; ``nb101``: NB101's macro; module docstring),
    ``bn_momentum`` (PyTorch's convention; None: the macro's, 0.997 for ``oneshot1``, 0.1 for ``nb101``).
    Small CPU configuration: ``C=4, num_stacks=1, cells_per_stack=1``. ``partial_channels`` (K > 1)
    builds the PC-DARTS one-shot model: each mixed operation sees 1/K of the block's channels
    (``nn.partial.partial_mix``, Xu et al. 2020, Eq. 2); such a model runs the relaxation only.
    ``wsbn``: one BN per parent set in every block's conv operations (module docstring; single path only).
    """

    supports_partial_channels = True

    tiny_options = {"C": 4, "num_stacks": 1, "cells_per_stack": 1}

    def __init__(self, space: Optional[NB1Shot1Space] = None, num_classes: int = 10, in_channels: int = 3, C: int = 16,
                 num_stacks: int = 3, cells_per_stack: int = 3, macro: Macro = "oneshot1",
                 bn_momentum: Optional[float] = None, partial_channels: int = 1,
                 arch: Optional[NB1Shot1Architecture] = None, wsbn: bool = False) -> None:
        super().__init__()
        if wsbn and partial_channels > 1:
            raise ValueError("model.network.wsbn keys each BN by a block's chosen parent set, which the PC-DARTS "
                             "(partial_channels) model never has: set one of them")
        self.wsbn = wsbn
        if macro not in MACROS:
            raise ValueError(f"model.network.macro must be one of {list(MACROS)} (the authors' one-shot model or "
                             f"NB101's macro), got {macro!r}")
        default_momentum, self.pool_padding = MACROS[macro]
        bn_momentum = default_momentum if bn_momentum is None else bn_momentum
        if C < 1 or num_stacks < 1 or cells_per_stack < 1:
            raise ValueError(f"NAS-Bench-1Shot1 network needs C, num_stacks, cells_per_stack >= 1, got {C}, {num_stacks}, {cells_per_stack}")
        check_partial_channels(C, partial_channels, arch)
        self.space = space if space is not None else NB1Shot1Space()
        if arch is not None:
            self.space.check(arch)
        self.partial_channels = partial_channels
        self.arch = arch
        m = self.space.num_blocks
        self.stem = ConvBnRelu(in_channels, C, 3, bn_momentum)
        self.cells = nn.ModuleList()
        self.downsample_before: list[bool] = []
        c_in, width = C, C
        for s in range(num_stacks):
            if s > 0:
                width *= 2
            for i in range(cells_per_stack):
                self.cells.append(ChoiceBlockCell(c_in, width, self.space, arch, bn_momentum, partial_channels, wsbn))
                self.downsample_before.append(s > 0 and i == 0)
                c_in = width * m
        self.postprocess = ReluConvBn(c_in, width) if macro == "oneshot1" else ConvBnRelu(c_in, width, 1, bn_momentum)
        self.classifier = nn.Linear(width, num_classes)

    def _run(self, x: torch.Tensor, cell_run: Callable[[ChoiceBlockCell, torch.Tensor], torch.Tensor]) -> torch.Tensor:
        x = self.stem(x)
        for cell, down in zip(self.cells, self.downsample_before, strict=True):
            if down:
                x = F.max_pool2d(x, 2, 2, padding=self.pool_padding, ceil_mode=self.pool_padding == 0)
            x = cell_run(cell, x)
        x = self.postprocess(x)
        return self.classifier(x.mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor, arch: Optional[NB1Shot1Architecture] = None) -> torch.Tensor:
        arch = self.path_architecture(arch)
        if self.partial_channels > 1:  # PC-DARTS' model has relaxed edges only
            return self.path_as_relaxation(x, arch)
        blocks = sorted(arch.live)
        outputs = set(arch.parents[-1])

        def cell_run(cell: ChoiceBlockCell, h: torch.Tensor) -> torch.Tensor:
            return cell.run(h, blocks, lambda j: [(i, None) for i in arch.parents[j - 1]],
                            lambda j, t: cell.operation(j, arch.ops[j - 1], t, arch.parents[j - 1]),
                            lambda i: None if i in outputs else False)

        return self._run(x, cell_run)

    def forward_weighted(self, x: torch.Tensor, weights: Mapping[str, torch.Tensor], active: Active = None) -> torch.Tensor:
        if self.wsbn:
            raise ValueError("model.network.wsbn keys each BN by a block's chosen parent set; the relaxation sums every "
                             "candidate parent, so it runs without wsbn (use a single-path strategy with wsbn)")
        space = self.space
        ops, inputs, output = weights["ops"], weights["inputs"], weights["output"]
        names = space.operations
        k = self.partial_channels
        passthrough = passes_through(active, "ops")

        def block_inputs(j: int) -> list:
            if j in space.input_segments:
                a, _ = space.input_segments[j]
                return [(i, inputs[a + i]) for i in range(j)]
            return [(i, None) for i in range(j)]

        def cell_run(cell: ChoiceBlockCell, h: torch.Tensor) -> torch.Tensor:
            def block_op(j: int, t: torch.Tensor) -> torch.Tensor:
                options = active_options(active, "ops", j - 1, len(names))
                if k > 1:
                    return partial_mix(t, k, ops[j - 1], options, lambda o, part: cell.operation(j, names[o], part),
                                       passthrough)
                return mix(ops[j - 1], options, lambda o: cell.operation(j, names[o], t), passthrough)

            return cell.run(h, range(1, space.num_blocks + 1), block_inputs, block_op, lambda i: output[i])

        return self._run(x, cell_run)
