"""AWD-LSTM regularisation for recurrent language models, with masks from an explicit generator.

Merity et al. 2018 ("Regularizing and Optimizing LSTM Language Models", Sec. 4), as DARTS' and
ENAS' recurrent cells use it:

- embedding dropout (``dropout_embedding``, AWD-LSTM ``dropoute``): whole words of the embedding
  matrix are dropped for the window, the survivors scaled by 1/(1-p);
- variational ("locked") dropout (``dropout_input`` on the embeddings, ``dropout`` on the cell
  outputs, DARTS' ``dropoutx``/``dropouth`` on the cell's input and hidden inputs): one mask per
  sequence (row), shared by every time step;
- DropConnect on the hidden-to-hidden weights (``weight_drop``, AWD-LSTM's ``WeightDrop``): one
  mask on the weight matrix per forward pass;
- activation regularisation (AR, ``alpha``) on the dropped outputs and temporal activation
  regularisation (TAR, ``beta``) on the raw outputs' time differences.

Every mask is drawn from the ``torch.Generator`` passed in (the network owns one, on the CPU, saved
in its state dict), never from torch's global generator, so the masks of a run are a function of
the seed and the number of forward passes, identical on CPU and GPU and after a resume.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F


def dropout_mask(shape: tuple[int, ...], p: float, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """Bernoulli(1-p) / (1-p) of ``shape``, drawn on the generator's device, returned on ``like``'s
    device and dtype. ``p`` in [0, 1)."""
    if not 0 <= p < 1:
        raise ValueError(f"a dropout probability must be in [0, 1), got {p}")
    keep = 1.0 - p
    mask = (torch.rand(shape, generator=generator, device=generator.device) < keep).to(like.dtype) / keep
    return mask.to(like.device)


def embedded_dropout(weight: torch.Tensor, words: torch.Tensor, p: float, generator: Optional[torch.Generator]) -> torch.Tensor:
    """Embedding lookup with whole words dropped (Gal & Ghahramani 2016; AWD-LSTM ``dropoute``)."""
    if p and generator is not None:
        weight = weight * dropout_mask((weight.shape[0], 1), p, generator, weight)
    return F.embedding(words, weight)


def locked_dropout(x: torch.Tensor, p: float, generator: Optional[torch.Generator]) -> torch.Tensor:
    """Variational dropout on (B, T, F): one mask per row and feature, shared over the T steps."""
    if not p or generator is None:
        return x
    return x * dropout_mask((x.shape[0], 1, x.shape[2]), p, generator, x)


def weight_dropout(weight: torch.Tensor, p: float, generator: Optional[torch.Generator]) -> torch.Tensor:
    """DropConnect (Wan et al. 2013) on a weight matrix: AWD-LSTM's ``WeightDrop``, once per forward."""
    if not p or generator is None:
        return weight
    return weight * dropout_mask(tuple(weight.shape), p, generator, weight)


def activation_regularisation(dropped: torch.Tensor, alpha: float) -> torch.Tensor:
    """AR: ``alpha * mean(dropped_outputs ** 2)`` (AWD-LSTM Sec. 4.6, on the dropped last-layer outputs)."""
    return alpha * dropped.pow(2).mean() if alpha else dropped.new_zeros(())


def temporal_activation_regularisation(raw: torch.Tensor, beta: float) -> torch.Tensor:
    """TAR: ``beta * mean((h_t - h_{t-1}) ** 2)`` on the raw (B, T, H) outputs (AWD-LSTM Sec. 4.6)."""
    if not beta or raw.shape[1] < 2:
        return raw.new_zeros(())
    return beta * (raw[:, 1:] - raw[:, :-1]).pow(2).mean()
