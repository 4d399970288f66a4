"""How batch norm normalises when a sub-network of a super-net is scored.

Running statistics of a super-net average over every path sampled during training, so they fit
no single architecture; scoring with them sends many architectures to chance accuracy ("How to
Train Your Super-Net", Sec. 4.2). Three modes, applied to *every* BatchNorm layer, including the
``affine=False`` ones of DARTS/NB201 search cells:

- ``batch``: normalise each evaluation mini-batch with its own statistics (the default);
- ``running``: the tracked running statistics (plain ``eval()``);
- ``recalibrate``: re-estimate running statistics for this architecture on a few training
  batches, evaluate with them, then restore the super-net's own statistics.
"""
from __future__ import annotations

import contextlib
import itertools
from enum import Enum
from typing import Callable, Iterable, Iterator, Literal

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


BNModeName = Literal["batch", "running", "recalibrate"]


class BNMode(str, Enum):
    BATCH = "batch"
    RUNNING = "running"
    RECALIBRATE = "recalibrate"


def batchnorm_layers(module: nn.Module) -> list[_BatchNorm]:
    return [m for m in module.modules() if isinstance(m, _BatchNorm)]


@contextlib.contextmanager
def batch_statistics(module: nn.Module) -> Iterator[None]:
    """Every BN layer normalises with the current batch's statistics and updates nothing."""
    layers = batchnorm_layers(module)
    saved = [(bn.training, bn.track_running_stats) for bn in layers]
    try:
        for bn in layers:
            bn.training, bn.track_running_stats = True, False
        yield
    finally:
        for bn, (training, track) in zip(layers, saved, strict=True):
            bn.training, bn.track_running_stats = training, track


def _device(bn: _BatchNorm, module: nn.Module) -> torch.device:
    """Where the layer lives; an ``affine=False, track_running_stats=False`` layer holds no tensor
    of its own (and ``module`` may have no parameters at all: ``next(parameters())`` would fail)."""
    for tensor in itertools.chain((bn.weight, bn.running_mean), module.parameters(), module.buffers()):
        if tensor is not None:
            return tensor.device
    return torch.device("cpu")


@contextlib.contextmanager
def recalibrated_statistics(module: nn.Module, forward: Callable[[torch.Tensor], torch.Tensor],
                            batches: Iterable[torch.Tensor]) -> Iterator[None]:
    """Running statistics re-estimated (cumulative average) from ``forward`` over ``batches``.

    Layers built without running statistics get temporary buffers. Everything is put back on exit,
    so recalibrating for one architecture never leaks into training or into the next one.
    """
    layers = batchnorm_layers(module)
    saved = [(bn.training, bn.track_running_stats, bn.momentum, bn.running_mean, bn.running_var,
              bn.num_batches_tracked) for bn in layers]
    try:
        for bn in layers:
            device = _device(bn, module)
            bn.running_mean = torch.zeros(bn.num_features, device=device)
            bn.running_var = torch.ones(bn.num_features, device=device)
            bn.num_batches_tracked = torch.zeros((), dtype=torch.long, device=device)
            bn.training, bn.track_running_stats, bn.momentum = True, True, None
        with torch.no_grad():
            for x in batches:
                forward(x)
        for bn in layers:
            bn.training = False
        yield
    finally:
        for bn, (training, track, momentum, mean, var, count) in zip(layers, saved, strict=True):
            bn.training, bn.track_running_stats, bn.momentum = training, track, momentum
            bn.running_mean, bn.running_var, bn.num_batches_tracked = mean, var, count


@contextlib.contextmanager
def running_statistics(module: nn.Module) -> Iterator[None]:
    layers = batchnorm_layers(module)
    saved = [bn.training for bn in layers]
    try:
        for bn in layers:
            bn.training = False
        yield
    finally:
        for bn, training in zip(layers, saved, strict=True):
            bn.training = training
