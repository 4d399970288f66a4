"""Operations of the DARTS convolutional cell (Liu et al. 2019, Sec. 3.1.1 and App. A.1.1).

Every convolution runs in ReLU -> conv -> BN order (the order ENAS found necessary for stable
weight sharing, Pham et al. 2018, App.; DARTS and NASNet use it too). Separable convolutions are
applied twice (Zoph et al. 2018); dilated ones once. ``skip_connect`` with stride 2 is a
factorized reduction (two offset 1x1 stride-2 convolutions, concatenated). ``none`` is not built:
the cells treat it as "adds nothing".

``bias``: the convolutions that feed a BN carry a bias (xautodl's ``bias=not affine``, the
convolutions of its DARTS-space search network, Dong & Yang's GDAS port; DARTS has none). A
bias right before a batch-statistics BN changes no output, but it is a parameter (counted, decayed).

Each builder is ``(channels, stride, affine, track_running_stats, bias=False) -> nn.Module``; the same builders
serve the search super-net (``affine=False`` as in DARTS' search) and the stand-alone networks, so a
super-net path and its stand-alone network run literally the same modules.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lightning_nas.registry import Registry

OpBuilder = Callable[..., nn.Module]
DARTS_OPS: Registry[OpBuilder] = Registry("DARTS CNN operation")


def _bn(channels: int, affine: bool, track: bool) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, affine=affine, track_running_stats=track)


class ReLUConvBN(nn.Sequential):
    """ReLU -> k x k convolution -> BN (the cells' 1x1 input preprocessing, among others)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int,
                 affine: bool = True, track_running_stats: bool = True, bias: bool = False) -> None:
        super().__init__(nn.ReLU(inplace=False),
                         nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=bias),
                         _bn(c_out, affine, track_running_stats))


class DilConv(nn.Sequential):
    """ReLU -> depthwise k x k dilated convolution -> pointwise 1x1 -> BN."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, dilation: int,
                 affine: bool = True, track_running_stats: bool = True, bias: bool = False) -> None:
        super().__init__(nn.ReLU(inplace=False),
                         nn.Conv2d(c_in, c_in, kernel, stride=stride, padding=padding, dilation=dilation,
                                   groups=c_in, bias=False),
                         nn.Conv2d(c_in, c_out, 1, bias=bias),
                         _bn(c_out, affine, track_running_stats))


class SepConv(nn.Sequential):
    """Two stacked depthwise-separable units (the first carries the stride)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int,
                 affine: bool = True, track_running_stats: bool = True, bias: bool = False) -> None:
        super().__init__(DilConv(c_in, c_in, kernel, stride, padding, 1, affine, track_running_stats, bias),
                         DilConv(c_in, c_out, kernel, 1, padding, 1, affine, track_running_stats, bias))


#: Below this many input channels a CPU factorized reduction runs in the standard (NCHW) layout:
#: oneDNN (torch 2.13, CPU) corrupts the heap ("free(): invalid next size", "double free or
#: corruption") computing the weight gradient of a 1x1 stride-2 convolution on channels-last input
#: with 2 to 6 input channels (even sizes from 8 pixels; 1, 7 and 8+ channels, forward alone and
#: stride 1 are fine). Channels-last input is what the batch augmentation's crop produces, and 2-6
#: channels what PC-DARTS' partial edges of tiny networks see (C=4, K=2 on the digits fixture).
ONEDNN_SAFE_CHANNELS = 8


def _standard_layout(t: torch.Tensor) -> bool:
    """Whether ``t`` has exactly the strides of a new contiguous tensor (a 1x1 kernel in channels-last
    layout passes ``is_contiguous()`` but still sends the convolution down the channels-last path)."""
    expected, stride = [], 1
    for size in reversed(t.shape):
        expected.append(stride)
        stride *= size
    return t.stride() == tuple(reversed(expected))


class FactorizedReduce(nn.Module):
    """Halve the resolution with two 1x1 stride-2 convolutions, the second offset by one pixel,
    each producing half of the output channels (NASNet's factorized reduction). On the CPU with
    fewer than ``ONEDNN_SAFE_CHANNELS`` input channels, input and kernels are used in the standard
    layout (a oneDNN heap corruption otherwise; same values)."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True, track_running_stats: bool = True,
                 bias: bool = False) -> None:
        super().__init__()
        if c_out % 2:
            raise ValueError(f"a factorized reduction needs an even number of output channels, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=bias)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=bias)
        self.bn = _bn(c_out, affine, track_running_stats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        w1, w2 = self.conv_1.weight, self.conv_2.weight
        if x.device.type == "cpu" and x.shape[1] < ONEDNN_SAFE_CHANNELS and not (
                _standard_layout(x) and _standard_layout(w1) and _standard_layout(w2)):
            x = x.contiguous()
            w1, w2 = (w.clone(memory_format=torch.contiguous_format) for w in (w1, w2))
        shifted = x[:, :, 1:, 1:]
        odd_h, odd_w = x.shape[-2] % 2, x.shape[-1] % 2
        if odd_h or odd_w:  # odd sizes (tiny fixtures): pad so both halves have ceil(size / 2) pixels
            shifted = nn.functional.pad(shifted, (0, odd_w, 0, odd_h))
        halves = [nn.functional.conv2d(x, w1, self.conv_1.bias, stride=2),
                  nn.functional.conv2d(shifted, w2, self.conv_2.bias, stride=2)]
        return self.bn(torch.cat(halves, dim=1))


class Conv7x1x1x7(nn.Sequential):
    """ReLU -> 1x7 convolution -> 7x1 convolution -> BN (AmoebaNet's reduction cell)."""

    def __init__(self, channels: int, stride: int, affine: bool = True, track_running_stats: bool = True,
                 bias: bool = False) -> None:
        super().__init__(nn.ReLU(inplace=False),
                         nn.Conv2d(channels, channels, (1, 7), stride=(1, stride), padding=(0, 3), bias=False),
                         nn.Conv2d(channels, channels, (7, 1), stride=(stride, 1), padding=(3, 0), bias=bias),
                         _bn(channels, affine, track_running_stats))


@DARTS_OPS.register("max_pool_3x3")
def max_pool_3x3(c: int, stride: int, affine: bool, track: bool, bias: bool = False) -> nn.Module:
    return nn.MaxPool2d(3, stride=stride, padding=1)


@DARTS_OPS.register("avg_pool_3x3")
def avg_pool_3x3(c: int, stride: int, affine: bool, track: bool, bias: bool = False) -> nn.Module:
    return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)


@DARTS_OPS.register("skip_connect")
def skip_connect(c: int, stride: int, affine: bool, track: bool, bias: bool = False) -> nn.Module:
    return nn.Identity() if stride == 1 else FactorizedReduce(c, c, affine, track, bias)


@DARTS_OPS.register("sep_conv_3x3")
def sep_conv_3x3(c: int, stride: int, affine: bool, track: bool, bias: bool = False) -> nn.Module:
    return SepConv(c, c, 3, stride, 1, affine, track, bias)


@DARTS_OPS.register("sep_conv_5x5")
def sep_conv_5x5(c: int, stride: int, affine: bool, track: bool, bias: bool = False) -> nn.Module:
    return SepConv(c, c, 5, stride, 2, affine, track, bias)


@DARTS_OPS.register("sep_conv_7x7")
def sep_conv_7x7(c: int, stride: int, affine: bool, track: bool, bias: bool = False) -> nn.Module:
    return SepConv(c, c, 7, stride, 3, affine, track, bias)


@DARTS_OPS.register("dil_conv_3x3")
def dil_conv_3x3(c: int, stride: int, affine: bool, track: bool, bias: bool = False) -> nn.Module:
    return DilConv(c, c, 3, stride, 2, 2, affine, track, bias)


@DARTS_OPS.register("dil_conv_5x5")
def dil_conv_5x5(c: int, stride: int, affine: bool, track: bool, bias: bool = False) -> nn.Module:
    return DilConv(c, c, 5, stride, 4, 2, affine, track, bias)


@DARTS_OPS.register("conv_7x1_1x7")
def conv_7x1_1x7(c: int, stride: int, affine: bool, track: bool, bias: bool = False) -> nn.Module:
    return Conv7x1x1x7(c, stride, affine, track, bias)


#: The operations that share one elastic kernel under OFA's elastic kernel size: name -> (family, kernel size)
ELASTIC_KERNELS: dict[str, tuple[str, int]] = {
    "sep_conv_3x3": ("sep_conv", 3), "sep_conv_5x5": ("sep_conv", 5), "sep_conv_7x7": ("sep_conv", 7),
    "dil_conv_3x3": ("dil_conv", 3), "dil_conv_5x5": ("dil_conv", 5)}


def elastic_families(operations: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """The operation families of ``operations`` with several kernel sizes, each with its sizes
    (ascending): the families an OFA kernel serves (one family with a single size needs none)."""
    sizes: dict[str, set[int]] = {}
    for name in operations:
        if name in ELASTIC_KERNELS:
            family, size = ELASTIC_KERNELS[name]
            sizes.setdefault(family, set()).add(size)
    return {family: tuple(sorted(s)) for family, s in sizes.items() if len(s) > 1}


class ElasticDepthwise(nn.Module):
    """A depthwise convolution with one kernel of the largest size whose centre serves the smaller sizes
    (OFA's elastic kernel size, Cai et al. 2020, "Once-for-All", Sec. 3.2 and Fig. 3).

    The k x k kernel is the centre k x k of the next larger size's kernel (largest first), times a
    learned k^2 x k^2 kernel transformation matrix; OFA keeps one matrix per size in every layer and
    uses it for all of the layer's channels: flattened, ``w_k = centre_k(w_next) @ M_k^T``. The
    matrices start as the identity (the OFA authors' initialisation), so an untrained small kernel is
    the plain centre. The largest kernel is
    an ``nn.Conv2d`` weight (its default initialisation; ``conv``), padding ``dilation * (k - 1) / 2``
    keeps the resolution of every size as the fixed-size DARTS operations do."""

    def __init__(self, channels: int, sizes: Sequence[int], stride: int, dilation: int) -> None:
        super().__init__()
        self.sizes = tuple(sorted(sizes))
        if any(k % 2 == 0 for k in self.sizes) or len(set(self.sizes)) != len(self.sizes):
            raise ValueError(f"elastic kernel sizes must be distinct odd numbers, got {list(sizes)}")
        self.stride, self.dilation = stride, dilation
        largest = self.sizes[-1]
        self.conv = nn.Conv2d(channels, channels, largest, stride=stride, padding=dilation * (largest - 1) // 2,
                              dilation=dilation, groups=channels, bias=False)
        self.transforms = nn.ParameterDict({str(k): nn.Parameter(torch.eye(k * k)) for k in self.sizes[:-1]})

    def kernel(self, size: int) -> torch.Tensor:
        """The ``size`` x ``size`` depthwise kernel (a view of the largest for the largest size)."""
        if size not in self.sizes:
            raise ValueError(f"this elastic kernel serves sizes {list(self.sizes)}, not {size}")
        w = self.conv.weight
        steps = [k for k in reversed(self.sizes[:-1]) if k >= size]  # e.g. 7 -> 5 -> 3: one matrix per step
        for k in steps:
            start = (w.shape[-1] - k) // 2
            centre = w[:, :, start:start + k, start:start + k].reshape(-1, k * k)
            w = (centre @ self.transforms[str(k)].t()).reshape(w.shape[0], 1, k, k)
        return w

    def forward(self, x: torch.Tensor, size: int) -> torch.Tensor:
        if size == self.sizes[-1]:
            return self.conv(x)
        return F.conv2d(x, self.kernel(size), None, self.stride, self.dilation * (size - 1) // 2, self.dilation,
                        self.conv.groups)


class ElasticDilConv(nn.Module):
    """``DilConv`` (ReLU -> depthwise -> pointwise -> BN) with an elastic depthwise kernel: one module,
    pointwise convolution and BN included, serves every size of its family (OFA shares the whole layer)."""

    def __init__(self, c_in: int, c_out: int, sizes: Sequence[int], stride: int, dilation: int,
                 affine: bool = True, track_running_stats: bool = True, bias: bool = False) -> None:
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        self.depthwise = ElasticDepthwise(c_in, sizes, stride, dilation)
        self.pointwise = nn.Conv2d(c_in, c_out, 1, bias=bias)
        self.bn = _bn(c_out, affine, track_running_stats)

    def forward(self, x: torch.Tensor, size: int) -> torch.Tensor:
        return self.bn(self.pointwise(self.depthwise(self.relu(x), size)))


class ElasticSepConv(nn.Module):
    """``SepConv`` (two stacked separable units, the first carrying the stride) with elastic kernels."""

    def __init__(self, c_in: int, c_out: int, sizes: Sequence[int], stride: int,
                 affine: bool = True, track_running_stats: bool = True, bias: bool = False) -> None:
        super().__init__()
        self.first = ElasticDilConv(c_in, c_in, sizes, stride, 1, affine, track_running_stats, bias)
        self.second = ElasticDilConv(c_in, c_out, sizes, 1, 1, affine, track_running_stats, bias)

    def forward(self, x: torch.Tensor, size: int) -> torch.Tensor:
        return self.second(self.first(x, size), size)


def build_elastic(family: str, sizes: Sequence[int], channels: int, stride: int, affine: bool = True,
                  track_running_stats: bool = True, bias: bool = False) -> nn.Module:
    """The OFA module of ``family`` (``sep_conv``: dilation 1; ``dil_conv``: dilation 2, as DARTS' ops)."""
    if family == "sep_conv":
        return ElasticSepConv(channels, channels, sizes, stride, affine, track_running_stats, bias)
    if family == "dil_conv":
        return ElasticDilConv(channels, channels, sizes, stride, 2, affine, track_running_stats, bias)
    raise ValueError(f"no elastic kernel for operation family {family!r}")


def build_op(name: str, channels: int, stride: int, affine: bool = True, track_running_stats: bool = True,
             pool_bn: bool = False, bias: bool = False) -> nn.Module:
    """Operation ``name``; ``pool_bn`` appends DARTS' search-time BN (affine=False) after pooling;
    ``bias``: biases on the convolutions that feed a BN (module docstring)."""
    op = DARTS_OPS.get(name)(channels, stride, affine, track_running_stats, bias)
    if pool_bn and "pool" in name:
        op = nn.Sequential(op, nn.BatchNorm2d(channels, affine=False, track_running_stats=track_running_stats))
    return op


def drop_path(x: torch.Tensor, prob: float) -> torch.Tensor:
    """Zero whole samples with probability ``prob`` and rescale the rest by 1/(1-prob)
    (Larsson et al. 2017 as used by NASNet/DARTS); a new tensor, the input is untouched."""
    if prob <= 0.0:
        return x
    keep = 1.0 - prob
    mask = torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x / keep * mask
