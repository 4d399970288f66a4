"""DARTS: differentiable architecture search (Liu, Simonyan & Yang, ICLR 2019).

Every edge computes the softmax(alpha)-weighted sum of all operations (Eq. 2); alpha and the
shared weights w are optimised alternately on two disjoint splits, alpha on the architecture
split (``batch["arch"]``), w on the weights split (Alg. 1). First order uses grad_alpha
L_val(w, alpha); second order (``unrolled=True``) approximates the bi-level gradient with one
virtual SGD step, Eq. 7-8:

    grad_alpha L_val(w', alpha) - xi * [grad_alpha L_train(w+, alpha) - grad_alpha L_train(w-, alpha)] / (2 eps)
    w' = w - xi * grad_w L_train(w, alpha),   w+- = w +- eps * grad_w' L_val(w', alpha),
    eps = 0.01 / ||grad_w' L_val(w', alpha)||.

The subclasses GDAS and PC-DARTS change only ``relaxed_forward`` (and their architecture
parameters); the optimisation loop below is shared.
"""
from __future__ import annotations

from typing import Any, Hashable, Literal, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lightning_nas.seeding import generator
from lightning_nas.strategies.base import SearchStrategy


class DARTS(SearchStrategy):
    """Args (defaults: DARTS, Liu et al. 2019, Sec. 3.1.2 / A.1.1, CIFAR-10 search):
        unrolled: second-order (unrolled) architecture gradient; False is DARTS' first order.
        arch_lr, arch_betas, arch_weight_decay: Adam for alpha, 3e-4, (0.5, 0.999), 1e-3.
        arch_init_std: alpha ~ N(0, 1e-3^2) (authors' code), drawn from a seeded generator.
        arch_warmup_epochs: epochs of weight-only training before alpha is updated (0 in DARTS;
            15 in PC-DARTS).
        grad_clip: gradient-norm clipping of the weights, 5.
        lr, momentum, weight_decay, nesterov, min_lr: SGD 0.025, 0.9, 3e-4, plain momentum,
            cosine to 0.001, as in DARTS. Search for 50 epochs with batch size 64 and half of
            the CIFAR-10 training images as the architecture split (``data.arch_split``).

    Second order, documented simplifications: the virtual step is the SGD-with-momentum step of
    DARTS' code, w' = w - xi (momentum * buffer + grad + weight_decay * w) with xi the current
    weight learning rate (nesterov is ignored); BatchNorm running statistics are updated by
    the extra forward passes, as in the authors' code; with several processes the alpha
    gradient is averaged explicitly (``torch.autograd.grad`` bypasses DDP's reducer).
    """

    uses_architecture_split = True

    def __init__(self, unrolled: bool = False, arch_lr: float = 3e-4,
                 arch_betas: tuple[float, float] = (0.5, 0.999), arch_weight_decay: float = 1e-3,
                 arch_init_std: float = 1e-3, arch_warmup_epochs: int = 0, grad_clip: float = 5.0,
                 space: str = "nb201", space_options: Optional[dict[str, Any]] = None,
                 network: Optional[dict[str, Any]] = None, num_classes: int = 10, in_channels: int = 3,
                 lr: float = 0.025, momentum: float = 0.9, weight_decay: float = 3e-4, nesterov: bool = False,
                 lr_schedule: Literal["cosine", "constant"] = "cosine", min_lr: float = 0.001, seed: int = 0) -> None:
        super().__init__(space=space, space_options=space_options, network=network, num_classes=num_classes,
                         in_channels=in_channels, lr=lr, momentum=momentum, weight_decay=weight_decay,
                         nesterov=nesterov, lr_schedule=lr_schedule, min_lr=min_lr, seed=seed)
        for key, value in (("arch_lr", arch_lr), ("grad_clip", grad_clip), ("arch_init_std", arch_init_std),
                           ("arch_warmup_epochs", arch_warmup_epochs)):
            if value < 0:
                raise ValueError(f"model.{key} must be >= 0, got {value}")
        self.automatic_optimization = False
        # kept as attributes: save_hyperparameters records only the outermost subclass's arguments
        self.unrolled, self.arch_warmup_epochs, self.grad_clip = unrolled, arch_warmup_epochs, grad_clip
        self.arch_lr, self.arch_betas, self.arch_weight_decay = arch_lr, tuple(arch_betas), arch_weight_decay
        operations = getattr(self.space, "operations", None)
        edges = getattr(self.space, "edges", None)
        if operations is None or edges is None:
            raise ValueError(f"model.space: {type(self).__name__} needs a space with edges and operations "
                             f"(a cell space such as nb201), got {self.hparams.space}")
        gen = generator(seed, "architecture-init")
        self.alpha = nn.Parameter(arch_init_std * torch.randn(len(edges), len(operations), generator=gen))
        # columns of the super-net's weight matrix (over all NB201 operations) that this space uses
        from lightning_nas.spaces.nb201 import OPERATIONS

        self._columns = [OPERATIONS.index(op) for op in operations]
        self._all_operations = len(OPERATIONS)

    # ------------------------------------------------------------------ the relaxation
    def expand(self, weights: torch.Tensor) -> torch.Tensor:
        """(edges, space operations) -> (edges, all NB201 operations), zeros for absent operations."""
        if self._columns == list(range(self._all_operations)):
            return weights
        full = weights.new_zeros(weights.shape[0], self._all_operations)
        full[:, self._columns] = weights
        return full

    def mixture_weights(self) -> torch.Tensor:
        return F.softmax(self.alpha, dim=-1)

    def relaxed_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The super-net under the current relaxation (DARTS Eq. 2)."""
        return self.supernet.forward_mixture(x, self.expand(self.mixture_weights()))

    def architecture_parameters(self) -> list[nn.Parameter]:
        return [self.alpha]

    def derive_architecture(self) -> Hashable:
        """Arg-max operation per edge (DARTS Sec. 2.4; NB201 keeps every edge of the cell)."""
        return self.space.decode(self.alpha.detach().cpu())

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self) -> Any:
        optimizer, scheduler = self.weight_optimizer()
        arch_optimizer = torch.optim.Adam(self.architecture_parameters(), lr=self.arch_lr, betas=self.arch_betas,
                                          weight_decay=self.arch_weight_decay)
        return [optimizer, arch_optimizer], [{"scheduler": scheduler, "interval": "epoch"}]

    def training_step(self, batch: dict[str, tuple[torch.Tensor, torch.Tensor]], batch_idx: int) -> torch.Tensor:
        weight_opt, arch_opt = self.optimizers()
        xw, yw = batch["weights"]
        xa, ya = batch["arch"]
        if self.current_epoch >= self.arch_warmup_epochs:
            arch_opt.zero_grad()
            if self.unrolled:
                self.unrolled_backward(xw, yw, xa, ya, weight_opt.optimizer)
            else:
                arch_loss = F.cross_entropy(self.relaxed_forward(xa), ya)
                self.manual_backward(arch_loss)
                self.log("arch/loss", arch_loss, on_step=False, on_epoch=True)
            arch_opt.step()
        weight_opt.zero_grad()
        loss = self.classification_step(xw, yw, self.relaxed_forward(xw))
        self.manual_backward(loss)
        if self.grad_clip > 0:
            self.clip_gradients(weight_opt, gradient_clip_val=self.grad_clip, gradient_clip_algorithm="norm")
        weight_opt.step()
        return loss.detach()

    def on_train_epoch_end(self) -> None:
        """Manual optimisation: the epoch-wise weight schedule is stepped here."""
        scheduler = self.lr_schedulers()
        if scheduler is not None:
            scheduler.step()

    def unrolled_backward(self, xw: torch.Tensor, yw: torch.Tensor, xa: torch.Tensor, ya: torch.Tensor,
                          weight_optimizer: torch.optim.Optimizer) -> None:
        """Write the second-order architecture gradient (Eq. 7-8) into ``alpha.grad``."""
        group = weight_optimizer.param_groups[0]
        buffers = [weight_optimizer.state.get(p, {}).get("momentum_buffer") for p in self.weight_parameters()]
        grads = self.unrolled_gradient(xw, yw, xa, ya, xi=group["lr"], momentum=group.get("momentum", 0.0),
                                       weight_decay=group.get("weight_decay", 0.0), momentum_buffers=buffers)
        world = self.trainer.world_size if self._trainer is not None else 1
        for p, g in zip(self.architecture_parameters(), grads):
            if world > 1:
                torch.distributed.all_reduce(g)
                g = g / world
            p.grad = g if p.grad is None else p.grad + g

    def unrolled_gradient(self, xw: torch.Tensor, yw: torch.Tensor, xa: torch.Tensor, ya: torch.Tensor, xi: float,
                          momentum: float = 0.0, weight_decay: float = 0.0,
                          momentum_buffers: Optional[Sequence[Optional[torch.Tensor]]] = None) -> list[torch.Tensor]:
        """DARTS Eq. 7-8 with the central finite-difference Hessian-vector product.

        The weights are left exactly as they were on entry. Returns one gradient per architecture
        parameter.
        """
        weights = self.weight_parameters()
        arch = self.architecture_parameters()
        buffers = list(momentum_buffers) if momentum_buffers is not None else [None] * len(weights)
        backup = [p.detach().clone() for p in weights]
        try:
            # virtual step w' = w - xi * (momentum * buffer + grad_w L_train + weight_decay * w)
            train_loss = F.cross_entropy(self.relaxed_forward(xw), yw)
            grads = _grads(train_loss, weights)
            with torch.no_grad():
                for p, g, buf in zip(weights, grads, buffers):
                    step = g + weight_decay * p
                    if buf is not None and momentum:
                        step = step + momentum * buf
                    p.sub_(xi * step)
            # grad_alpha and grad_w' of L_val(w', alpha)
            val_loss = F.cross_entropy(self.relaxed_forward(xa), ya)
            both = _grads(val_loss, list(arch) + list(weights))
            d_alpha, d_weights = both[:len(arch)], both[len(arch):]
            norm = torch.sqrt(sum((d * d).sum() for d in d_weights))
            eps = 0.01 / float(norm.clamp_min(1e-12))
            # grad_alpha L_train at w +- eps * grad_w' L_val (around w, not w')
            hessian_terms = []
            for sign in (1.0, -1.0):
                with torch.no_grad():
                    for p, w, d in zip(weights, backup, d_weights):
                        p.copy_(w + sign * eps * d)
                hessian_terms.append(_grads(F.cross_entropy(self.relaxed_forward(xw), yw), arch))
            return [da - xi * (gp - gm) / (2 * eps) for da, gp, gm in zip(d_alpha, *hessian_terms)]
        finally:
            with torch.no_grad():
                for p, w in zip(weights, backup):
                    p.copy_(w)


def _grads(loss: torch.Tensor, params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """d loss / d params, zeros for parameters the loss does not reach."""
    grads = torch.autograd.grad(loss, list(params), allow_unused=True)
    return [torch.zeros_like(p) if g is None else g.detach() for p, g in zip(params, grads)]
