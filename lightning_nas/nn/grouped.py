"""One operation on several edges as one kernel: the edges' copies of an operation, stacked.

PC-DARTS (Xu et al. 2020, Sec. 3.2) sends C/K channels of every edge through the mixed operation.
The edges of a node that apply the same operation (each with its own weights) are then independent
computations on C/K channels each; concatenating their inputs along the channels, edge after edge,
turns them into one computation on ``n * C/K`` channels:

- a convolution with ``groups`` becomes one convolution with ``n * groups`` (the edges' kernels
  concatenated along the output channels: group g of edge e sees exactly edge e's channels);
- a batch norm is per channel, so the edges' BNs are one BN over the concatenated channels; their
  running statistics are kept as consecutive slices of one tensor (views), which the BN updates in
  place - each BN's statistics from its own edge's channels, exactly as by its own forward;
- ReLU, pooling and the identity act per channel: they run once on the concatenation.

The result is the edges' outputs concatenated in the same order, values equal to the edges run one
by one within float rounding (a grouped convolution sums in its own order). ``flatten`` says which
modules are such chains (``nn.Sequential`` and the cells' convolution units); anything else, a
module two edges share (op on node: one BN statistic updated twice in a row), or a BN with a
cumulative moving average (``momentum=None``: its factor depends on each BN's own count) runs edge
by edge.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

#: the parameter-free modules that act on every channel alone
_CHANNELWISE = (nn.ReLU, nn.Identity, nn.MaxPool2d, nn.AvgPool2d)


def flatten(module: nn.Module) -> Optional[list[nn.Module]]:
    """``module`` as its chain of leaves (convolutions, BNs, channel-wise modules), or None when it is
    something else. A ``nn.Sequential`` subclass counts as a chain when its forward is the sequential
    one or it declares ``sequential_forward = True`` (same result, e.g. NB201's ``ReLUConvBN``)."""
    if isinstance(module, nn.Sequential):
        if type(module).forward is not nn.Sequential.forward and not getattr(type(module), "sequential_forward", False):
            return None
        leaves: list[nn.Module] = []
        for child in module:
            sub = flatten(child)
            if sub is None:
                return None
            leaves += sub
        return leaves
    if isinstance(module, nn.Conv2d):
        return [module] if module.padding_mode == "zeros" and isinstance(module.padding, tuple) else None
    if isinstance(module, nn.BatchNorm2d):
        return [module] if module.momentum is not None or not module.track_running_stats else None
    if isinstance(module, _CHANNELWISE):
        return None if getattr(module, "inplace", False) else [module]  # in place would change the shared input
    return None


def _signature(leaf: nn.Module) -> tuple:
    """What two leaves must agree on to run as one."""
    if isinstance(leaf, nn.Conv2d):
        return (nn.Conv2d, leaf.in_channels, leaf.out_channels, leaf.kernel_size, leaf.stride, leaf.padding,
                leaf.dilation, leaf.groups, leaf.bias is not None)
    if isinstance(leaf, nn.BatchNorm2d):
        return (nn.BatchNorm2d, leaf.num_features, leaf.eps, leaf.momentum, leaf.affine, leaf.track_running_stats,
                leaf.training)
    return (type(leaf), repr(leaf), leaf.training)


def chain_signature(module: Optional[nn.Module]) -> Optional[tuple]:
    """What decides whether two modules can run as one chain (equal signatures; None: never)."""
    leaves = flatten(module) if module is not None else None
    return None if leaves is None else tuple(_signature(leaf) for leaf in leaves)


def chains(modules: Sequence[nn.Module]) -> Optional[list[list[nn.Module]]]:
    """Per position of the chain, the edges' leaves, when ``modules`` (one per edge) can run as one:
    the same chain structure and configuration, no parameter or buffer shared between them."""
    flat = [flatten(m) for m in modules]
    if any(f is None for f in flat) or len({len(f) for f in flat}) != 1:
        return None
    stages = [list(leaves) for leaves in zip(*flat, strict=True)]
    for leaves in stages:
        if len({_signature(leaf) for leaf in leaves}) != 1:
            return None
    owned = [id(t) for m in modules for t in (*m.parameters(), *m.buffers())]
    return stages if len(owned) == len(set(owned)) else None


def _cat(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    return tensors[0] if len(tensors) == 1 else torch.cat(list(tensors))


def _conv(leaves: Sequence[nn.Conv2d], x: torch.Tensor) -> torch.Tensor:
    first = leaves[0]
    bias = _cat([c.bias for c in leaves]) if first.bias is not None else None
    return F.conv2d(x, _cat([c.weight for c in leaves]), bias, first.stride, first.padding, first.dilation,
                    first.groups * len(leaves))


def _joint(leaves: Sequence[nn.Module], name: str) -> torch.Tensor:
    """The buffers ``name`` of ``leaves`` as one tensor of which they are the consecutive slices.

    When they already are (adjacent in one storage), that tensor is a view and costs nothing;
    otherwise (first use, or after ``.to()`` gave every buffer its own storage) they are concatenated
    once and each module's buffer becomes its slice of the concatenation (same values), so that the
    BN's in-place update of the joint statistics is each module's own update, with no copy back."""
    tensors = [getattr(leaf, name) for leaf in leaves]
    first, size = tensors[0], tensors[0].numel()
    pointer, offset = first.untyped_storage().data_ptr(), first.storage_offset()
    if all(t.untyped_storage().data_ptr() == pointer and t.storage_offset() == offset + i * size and t.is_contiguous()
           for i, t in enumerate(tensors)):
        return first.as_strided((len(tensors) * size,), (1,))
    joint = torch.cat(tensors)
    for leaf, piece in zip(leaves, joint.split(size), strict=True):
        setattr(leaf, name, piece)  # a registered buffer: the module now holds its slice of ``joint``
    return joint


def _batch_norm(leaves: Sequence[nn.BatchNorm2d], x: torch.Tensor) -> torch.Tensor:
    """The edges' BNs as one: their running statistics are the consecutive slices of one tensor
    (``_joint``), so that the in-place update of a training forward updates each BN from its own
    channels, as its own forward would; the batch counts advance together."""
    first = leaves[0]
    weight = _cat([b.weight for b in leaves]) if first.affine else None
    bias = _cat([b.bias for b in leaves]) if first.affine else None
    tracked = first.track_running_stats
    mean = _joint(leaves, "running_mean") if tracked else None
    var = _joint(leaves, "running_var") if tracked else None
    out = F.batch_norm(x, mean, var, weight, bias, first.training or not tracked, first.momentum, first.eps)
    if first.training and tracked:
        torch._foreach_add_([b.num_batches_tracked for b in leaves], 1)
    return out


def run_chains(stages: Sequence[Sequence[nn.Module]], x: torch.Tensor, cache: Optional[dict] = None) -> torch.Tensor:
    """The edges' chains (from ``chains``) on ``x``, their inputs concatenated along the channels edge
    after edge; returns their outputs concatenated the same way. ``cache`` (keyed by the input and the
    leading parameter-free leaf) shares a leading ReLU or pooling among the operations that read the
    same edges' inputs (each convolution unit starts with the same ReLU). Parameter-free leaves run
    their ``forward`` directly: a module hook would see several edges' channels at once."""
    for i, leaves in enumerate(stages):
        leaf = leaves[0]
        if isinstance(leaf, nn.Conv2d):
            x = _conv(leaves, x)
        elif isinstance(leaf, nn.BatchNorm2d):
            x = _batch_norm(leaves, x)
        elif i == 0 and cache is not None:
            key = (id(x), _signature(leaf))
            if key not in cache:
                cache[key] = (x, leaf.forward(x))  # the input is kept alive with its output: ids are not reused
            x = cache[key][1]
        else:
            x = leaf.forward(x)
    return x
