"""Operations of the NAS-Bench-201 cell, shared by super-nets and stand-alone networks.

Each builder takes the channel count and the batch-norm switches and returns a module; the
super-net instantiates every operation on every edge, a stand-alone net only the chosen one, so
both run literally the same code.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from lightning_nas.registry import Registry


class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv -> BN, the convolution unit of NAS-Bench-201 (and DARTS)."""

    #: ``forward`` without ``activated`` is the sequential composition (``lightning_nas.nn.grouped``)
    sequential_forward = True

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int,
                 affine: bool = True, track_running_stats: bool = True) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, affine=affine, track_running_stats=track_running_stats),
        )

    def forward(self, x: torch.Tensor, activated: bool = False) -> torch.Tensor:
        """``activated``: ``x`` is already ReLU'd (a relaxed cell computes the ReLU of a node once for
        all the convolutions that read it); the result is the same."""
        return self[2](self[1](x if activated else self[0](x)))


OpBuilder = Callable[[int, bool, bool], nn.Module]
NB201_OPS: Registry[OpBuilder] = Registry("NB201 operation")


@NB201_OPS.register("skip_connect")
def skip_connect(channels: int, affine: bool, track: bool) -> nn.Module:
    return nn.Identity()


@NB201_OPS.register("nor_conv_1x1")
def nor_conv_1x1(channels: int, affine: bool, track: bool) -> nn.Module:
    return ReLUConvBN(channels, channels, 1, 1, 0, affine, track)


@NB201_OPS.register("nor_conv_3x3")
def nor_conv_3x3(channels: int, affine: bool, track: bool) -> nn.Module:
    return ReLUConvBN(channels, channels, 3, 1, 1, affine, track)


@NB201_OPS.register("avg_pool_3x3")
def avg_pool_3x3(channels: int, affine: bool, track: bool) -> nn.Module:
    return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
