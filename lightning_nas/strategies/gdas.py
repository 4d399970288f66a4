"""GDAS: searching for a robust neural architecture in four GPU hours (Dong & Yang, CVPR 2019).

DARTS' softmax mixture is replaced by a Gumbel-softmax sample with a hard one-hot forward and a
soft backward (straight-through, Eq. 5-7): h = one_hot(argmax_o (log p_o + g_o)), with
g_o ~ Gumbel(0, 1), and the edge weight h - stop_grad(s) + s where s = softmax((log p + g) / tau).
Only the sampled operation of each edge runs, so a step costs about as much as a single path, and
alpha still receives a gradient through s. One sample per forward pass is shared by all cells
(the NB201 super-net shares alpha across cells). The temperature decays linearly from
``tau_max`` to ``tau_min`` over ``max_epochs``. Both alpha and w are updated first order, as in
the paper, with the DARTS loop (``DARTS.training_step``).
"""
from __future__ import annotations

from typing import Any, Literal, Optional

import torch
import torch.nn.functional as F

from lightning_nas.strategies.darts import DARTS


class GDAS(DARTS):
    """Args (defaults: GDAS, Dong & Yang 2019, Sec. 4.1, and its NB201 port, Dong & Yang 2020):
        tau_max, tau_min: Gumbel-softmax temperature, linearly 10 -> 1 over the search.
        arch_lr, arch_betas, arch_weight_decay: Adam 3e-4, (0.5, 0.999), 1e-3.
        lr, momentum, weight_decay, min_lr: SGD 0.025, 0.9, 3e-4, cosine to 0.001; 250 epochs
            with batch size 64 on NB201 (the NB201 port), half the training set as the arch split.
        grad_clip: 5.
    """

    def __init__(self, tau_max: float = 10.0, tau_min: float = 1.0, arch_lr: float = 3e-4,
                 arch_betas: tuple[float, float] = (0.5, 0.999), arch_weight_decay: float = 1e-3,
                 arch_init_std: float = 1e-3, arch_warmup_epochs: int = 0, grad_clip: float = 5.0,
                 space: str = "nb201", space_options: Optional[dict[str, Any]] = None,
                 network: Optional[dict[str, Any]] = None, num_classes: int = 10, in_channels: int = 3,
                 lr: float = 0.025, momentum: float = 0.9, weight_decay: float = 3e-4, nesterov: bool = False,
                 lr_schedule: Literal["cosine", "constant"] = "cosine", min_lr: float = 0.001, seed: int = 0) -> None:
        if not 0 < tau_min <= tau_max:
            raise ValueError(f"model.tau_min ({tau_min}) and model.tau_max ({tau_max}) need 0 < tau_min <= tau_max")
        super().__init__(unrolled=False, arch_lr=arch_lr, arch_betas=arch_betas, arch_weight_decay=arch_weight_decay,
                         arch_init_std=arch_init_std, arch_warmup_epochs=arch_warmup_epochs, grad_clip=grad_clip,
                         space=space, space_options=space_options, network=network, num_classes=num_classes,
                         in_channels=in_channels, lr=lr, momentum=momentum, weight_decay=weight_decay,
                         nesterov=nesterov, lr_schedule=lr_schedule, min_lr=min_lr, seed=seed)
        #: indices (into the space's operations) of the last sampled path, for inspection and tests.
        self.last_indices: Optional[torch.Tensor] = None

    @property
    def tau(self) -> float:
        """Linear decay over the epochs (the temperature is a function of the epoch, so resumption is exact)."""
        hp = self.hparams
        epochs = int(self.trainer.max_epochs or 1) if self._trainer is not None else 1
        progress = self.current_epoch / max(1, epochs - 1) if self._trainer is not None else 0.0
        return hp.tau_max - (hp.tau_max - hp.tau_min) * min(1.0, progress)

    def sample_weights(self, tau: Optional[float] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(indices, straight-through one-hot weights) from the seeded architecture generator."""
        tau = self.tau if tau is None else tau
        # Gumbel(0, 1) = -log(Exponential(1)); drawn on the CPU generator, identical on every rank
        noise = -torch.empty(self.alpha.shape, dtype=torch.float64).exponential_(generator=self.arch_generator).log()
        noise = noise.to(device=self.alpha.device, dtype=self.alpha.dtype)
        soft = F.softmax((F.log_softmax(self.alpha, dim=-1) + noise) / tau, dim=-1)
        indices = soft.argmax(dim=-1)
        hard = F.one_hot(indices, soft.shape[-1]).to(soft.dtype)
        return indices, hard - soft.detach() + soft

    def relaxed_forward(self, x: torch.Tensor) -> torch.Tensor:
        indices, weights = self.sample_weights()
        self.last_indices = indices.detach().cpu()
        columns = [self._columns[int(i)] for i in indices]
        return self.supernet.forward_sampled(x, columns, self.expand(weights))

    def on_train_epoch_start(self) -> None:
        self.log("arch/tau", self.tau, on_step=False, on_epoch=True)
