"""The forwards of one DARTS hypergradient (Liu et al. 2019, Eq. 7-8) on stateful, noisy data.

One hypergradient runs several forwards: L_train at w (the virtual step), L_val at w', and, for the
finite difference, L_train at w+ and w-. They differentiate *one* function of (w, alpha), so:

- every forward on the weights' window starts from that window's carried hidden state (a recurrent
  language model trained with stateful BPTT; DARTS' ``rnn/architect.py`` passes ``hidden_train``
  to each of them) and leaves it as it was: the weight step that follows trains on that window;
- the forward on the architecture's window starts from its carried state and stores its last one,
  as the first-order step does (DARTS keeps the state of the forward at w');
- every forward on the weights' window draws the same dropout masks (the network's random stream
  is rewound to where the first of them started), and the stream ends where it would after one
  forward per window. DARTS' code draws new masks in each forward, so its +/- difference mixes two
  different functions; here a central difference of one function is what it approximates.

On stateless data and networks without a random stream every part is a no-op.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn


class _Substituted(nn.Module):
    """Lets ``torch.func.functional_call`` run a relaxed forward of ``net`` with other weights."""

    def __init__(self, net: nn.Module, run: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.net = net
        self.run = run

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x)


class HypergradientForwards:
    """``weights_loss`` and ``architecture_loss`` of one hypergradient; call ``finish`` at the end.

    ``strategy`` provides ``supernet``, ``relaxed_forward`` and ``carried``; ``batch`` is the
    training batch (its ``window`` says whether the data is stateful)."""

    def __init__(self, strategy: Any, batch: Any) -> None:
        self.strategy, self.batch = strategy, batch
        self.net = strategy.supernet
        self.start = self.net.noise_state()  # where every weights-window forward starts drawing
        self.after_weights: Optional[Any] = None  # where the first of them stopped
        self.end: Optional[Any] = None  # where the architecture-window forward stopped
        self.names = [f"net.{name}" for name, _ in self.net.named_parameters()]

    def _forward(self, x: torch.Tensor, weights: Optional[Sequence[torch.Tensor]]) -> torch.Tensor:
        if weights is None:
            return self.strategy.relaxed_forward(x)
        module = _Substituted(self.net, self.strategy.relaxed_forward)
        return torch.func.functional_call(module, dict(zip(self.names, weights, strict=True)), (x,))

    def weights_loss(self, x: torch.Tensor, y: torch.Tensor,
                     weights: Optional[Sequence[torch.Tensor]] = None) -> torch.Tensor:
        """L_train on the weights' window (``weights``: substituted for the network's parameters)."""
        if self.start is not None:
            self.net.set_noise_state(self.start)
        with self.strategy.carried(self.batch, "weights", store=False):
            loss = F.cross_entropy(self._forward(x, weights), y)
        if self.after_weights is None:
            self.after_weights = self.net.noise_state()
        return loss

    def architecture_loss(self, x: torch.Tensor, y: torch.Tensor,
                          weights: Optional[Sequence[torch.Tensor]] = None) -> torch.Tensor:
        """L_val on the architecture's window, once per hypergradient, after a ``weights_loss``."""
        if self.after_weights is not None:
            self.net.set_noise_state(self.after_weights)
        with self.strategy.carried(self.batch, "arch"):
            loss = F.cross_entropy(self._forward(x, weights), y)
        self.end = self.net.noise_state()
        return loss

    def finish(self) -> None:
        """Leave the random stream where one forward per window would have left it."""
        if self.end is not None:
            self.net.set_noise_state(self.end)


def clip_coefficient(grads: Sequence[torch.Tensor], max_norm: float) -> torch.Tensor:
    """min(1, max_norm / (||grads|| + 1e-6)) (torch's ``clip_grad_norm_`` and DARTS' ``_clip``);
    differentiable in ``grads``; 1 when ``max_norm <= 0`` (no clipping)."""
    if max_norm <= 0:
        return torch.ones((), dtype=grads[0].dtype, device=grads[0].device)
    norm = torch.sqrt(sum((g * g).sum() for g in grads))
    return torch.clamp(max_norm / (norm + 1e-6), max=1.0)
