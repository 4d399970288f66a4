"""DARTS: differentiable architecture search (Liu, Simonyan & Yang, ICLR 2019).

Every decision edge computes the softmax(alpha)-weighted sum of its options (Eq. 2), with one
alpha per weight group of the space's relaxation; alpha and the shared weights w are optimised
alternately on two disjoint splits (Alg. 1, ``BilevelStrategy``). First order uses
grad_alpha L_val(w, alpha); second order (``unrolled=True``) approximates the bi-level gradient
with one virtual SGD step, Eq. 7-8:

    grad_alpha L_val(w', alpha) - xi * [grad_alpha L_train(w+, alpha) - grad_alpha L_train(w-, alpha)] / (2 eps)
    w' = w - xi * grad_w L_train(w, alpha),   w+- = w +- eps * grad_w' L_val(w', alpha),
    eps = 0.01 / ||grad_w' L_val(w', alpha)||.

``hypergradient: exact`` replaces the finite difference by autograd through the virtual step
(a double backward: grad_alpha L_val(w'(alpha), alpha) with w'(alpha) differentiated).

The answer is the space's own decoding of the final weights (NB201: arg-max per edge; DARTS CNN:
top-2 inputs without ``none``). GDAS and PC-DARTS change only ``relaxed_forward`` and which
groups exist.
"""
from __future__ import annotations

from typing import Any, Callable, ClassVar, Hashable, Literal, Optional, Sequence, get_args

import torch
import torch.nn.functional as F
from torch import nn

from lightning_nas.errors import RecipeError
from lightning_nas.registry import STRATEGIES
from lightning_nas.seeding import generator
from lightning_nas.spaces.decisions import WeightGroup
from lightning_nas.strategies.bilevel import BilevelStrategy
from lightning_nas.strategies.settings import ArchitectureOptimizer, WeightOptimizer
from lightning_nas.strategies.unrolled import HypergradientForwards, clip_coefficient

#: DARTS' CIFAR-10 search (Liu et al. 2019, Sec. 3.1.2 / A.1.1): SGD 0.025 cosine to 0.001,
#: momentum 0.9, weight decay 3e-4, gradient clipping 5; Adam 3e-4, (0.5, 0.999), 1e-3 for alpha.
DARTS_WEIGHTS = WeightOptimizer(lr=0.025, momentum=0.9, weight_decay=3e-4, nesterov=False, min_lr=0.001, grad_clip=5.0)
DARTS_ARCHITECTURE = ArchitectureOptimizer(lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
Hypergradient = Literal["finite_difference", "exact"]
#: ``torch.compile`` of the relaxed forward: a mode (``reduce-overhead`` captures CUDA graphs, the
#: launch-bound GPU case of issue 25) or a backend that generates no code (``eager``: dynamo's graph
#: run by the eager operators; ``aot_eager``: also traced through autograd), for checking a capture
CompileMode = Literal["default", "reduce-overhead", "max-autotune", "eager", "aot_eager"]


@STRATEGIES.register("darts")
class DARTS(BilevelStrategy):
    """Args (defaults: DARTS, Liu et al. 2019, Sec. 3.1.2 / A.1.1, CIFAR-10 search):
        unrolled: second-order (unrolled) architecture gradient; False is DARTS' first order.
        hypergradient: how second order computes the Hessian term: ``finite_difference`` (DARTS,
            Eq. 8, radius 0.01 / ||grad_w' L_val||) or ``exact`` (a double backward through the
            virtual step; more memory, no approximation).
        arch_init_std: alpha ~ N(0, 1e-3^2) (authors' code), drawn from a seeded generator.
        optimizer: SGD 0.025, momentum 0.9, weight decay 3e-4, cosine to 0.001, clipping 5.
        architecture_optimizer: Adam 3e-4, (0.5, 0.999), 1e-3, no warm-up.
        compile: ``torch.compile`` the relaxed forward (``CompileMode``; default None: off). Not a
            part of DARTS: on a GPU these super-nets are bound by kernel launches, which
            ``reduce-overhead`` (CUDA graphs; CUDA devices only) removes. First order only.
        Search for 50 epochs with batch size 64 and half of the CIFAR-10 training images as the
        architecture split (``data.arch_split``).

    Second order, documented simplifications: the virtual step is the SGD-with-momentum step of
    DARTS' code, w' = w - xi (momentum * buffer + grad + weight_decay * w) with xi the current
    weight learning rate (nesterov is ignored); BatchNorm running statistics are updated by the
    extra forward passes, as in the authors' code; with several processes the alpha gradient is
    averaged explicitly (``torch.autograd.grad`` bypasses DDP's reducer).

    Second order on a language model (DARTS' ``rnn/architect.py``): the forwards start from the
    carried hidden states and the weights' window forwards share one set of dropout masks
    (``strategies/unrolled.py``); the virtual step's gradient is clipped at ``optimizer.grad_clip``
    and the Hessian term scaled by the clip coefficient c = min(1, clip / ||grad||) (the derivative
    of c itself is left out, as DARTS does; ``exact`` keeps it). DARTS' code differs in two places
    that change the hypergradient of Eq. 7, not followed here: it scales by clip / ||grad|| also when
    that exceeds 1 (no clipping happened), and it clips grad_w' L_val before the finite difference.
    Its CNN code does not clip the virtual step (nor does this class on images).
    """

    requires = frozenset({"decisions", "relaxation"})
    answer = "derived"
    #: the second-order gradient: the tests then cover the unrolled step (first order is GDAS' and PC-DARTS')
    test_options = {"unrolled": True}
    #: create the space's edge-normalisation groups (PC-DARTS)
    edge_normalisation: ClassVar[bool] = False

    def __init__(self, unrolled: bool = False, hypergradient: Hypergradient = "finite_difference",
                 arch_init_std: float = 1e-3,
                 optimizer: WeightOptimizer = DARTS_WEIGHTS,
                 architecture_optimizer: ArchitectureOptimizer = DARTS_ARCHITECTURE,
                 compile: Optional[CompileMode] = None, **kwargs: Any) -> None:
        if compile is not None:
            check_compile(compile, unrolled)
        if arch_init_std < 0:
            raise RecipeError(f"model.arch_init_std must be >= 0, got {arch_init_std}")
        if hypergradient not in ("finite_difference", "exact"):
            raise RecipeError(f"model.hypergradient must be 'finite_difference' (DARTS) or 'exact', got {hypergradient!r}")
        super().__init__(optimizer=optimizer, architecture_optimizer=architecture_optimizer, **kwargs)
        self.unrolled = unrolled
        self.hypergradient = hypergradient
        self.compile = compile
        self._compiled: Optional[Callable[..., torch.Tensor]] = None
        self.groups: list[WeightGroup] = [g for g in self.space.relaxation
                                          if self.edge_normalisation or not g.edge_normalisation]
        gen = generator(self.hparams.seed, "architecture-init")
        self.arch_weights = nn.ParameterDict({
            g.name: nn.Parameter(arch_init_std * torch.randn(g.shape, generator=gen)) for g in self.groups})

    # ------------------------------------------------------------------ the relaxation
    def normalised_weights(self) -> dict[str, torch.Tensor]:
        """Each group normalised as the space says (softmax per row or per segment)."""
        return {g.name: g.normalise(self.arch_weights[g.name]) for g in self.groups}

    def relaxed_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The super-net under the current relaxation (DARTS Eq. 2)."""
        return self.weighted_forward()(x, self.normalised_weights())

    def weighted_forward(self) -> Callable[..., torch.Tensor]:
        """``supernet.forward_weighted``, compiled once on first use when ``compile`` is set."""
        if self.compile is None:
            return self.supernet.forward_weighted
        if self._compiled is None:
            if self.compile == "reduce-overhead" and self.device.type != "cuda":
                raise RecipeError(f"model.compile: 'reduce-overhead' captures CUDA graphs and needs a CUDA device, "
                                  f"this run is on {self.device.type}; use 'default' or leave it unset")
            backend = {"backend": self.compile} if self.compile in ("eager", "aot_eager") else {"mode": self.compile}
            self._compiled = torch.compile(self.supernet.forward_weighted, **backend)
        return self._compiled

    def weight_forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relaxed_forward(x)

    def architecture_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.relaxed_forward(x), y)

    def architecture_parameters(self) -> list[nn.Parameter]:
        return list(self.arch_weights.values())

    def weight_parameters(self) -> list[nn.Parameter]:
        return list(self.supernet.parameters())

    @torch.no_grad()
    def derive_architecture(self) -> Hashable:
        """The space's decoding of the normalised weights (DARTS Sec. 2.4)."""
        return self.space.decode({k: v.detach().float().cpu() for k, v in self.normalised_weights().items()})

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        return {**state, "_compiled": None}  # a compiled function is rebuilt, not copied or pickled

    # ------------------------------------------------------------------ second order
    def architecture_step(self, batch: Any, weight_optimizer: torch.optim.Optimizer) -> None:
        if not self.unrolled:
            return super().architecture_step(batch, weight_optimizer)
        (xw, yw), (xa, ya) = batch["weights"], batch["arch"]
        group = weight_optimizer.param_groups[0]
        buffers = [weight_optimizer.state.get(p, {}).get("momentum_buffer") for p in self.weight_parameters()]
        grads = self.unrolled_gradient(xw, yw, xa, ya, xi=group["lr"], momentum=group.get("momentum", 0.0),
                                       weight_decay=group.get("weight_decay", 0.0), momentum_buffers=buffers,
                                       batch=batch)
        world = self.trainer.world_size if self._trainer is not None else 1
        for p, g in zip(self.architecture_parameters(), grads, strict=True):
            if world > 1:
                torch.distributed.all_reduce(g)
                g = g / world
            p.grad = g if p.grad is None else p.grad + g

    def virtual_step_clip(self) -> float:
        """The norm the virtual step's gradient is clipped at: the weight step's on a language model
        (DARTS' ``rnn/architect.py``), none on images (its ``cnn/architect.py``)."""
        return self.optim.grad_clip if self.supernet.input_kind == "tokens" else 0.0

    def unrolled_gradient(self, xw: torch.Tensor, yw: torch.Tensor, xa: torch.Tensor, ya: torch.Tensor, xi: float,
                          momentum: float = 0.0, weight_decay: float = 0.0,
                          momentum_buffers: Optional[Sequence[Optional[torch.Tensor]]] = None,
                          batch: Any = None, clip: Optional[float] = None) -> list[torch.Tensor]:
        """DARTS Eq. 7-8: the hypergradient of L_val(w', alpha) with one virtual step
        w' = w - xi * (c * grad_w L_train + weight_decay * w + momentum * buffer), c the clip
        coefficient of ``clip`` (None: ``virtual_step_clip()``). ``batch``: the training batch, for its
        stateful windows (``HypergradientForwards``).

        The weights are left exactly as they were on entry. Returns one gradient per architecture
        parameter.
        """
        forwards = HypergradientForwards(self, batch)
        clip = self.virtual_step_clip() if clip is None else clip
        buffers = list(momentum_buffers) if momentum_buffers is not None else [None] * len(self.weight_parameters())
        try:
            if self.hypergradient == "exact":
                return self._exact_hypergradient(forwards, xw, yw, xa, ya, xi, momentum, weight_decay, buffers, clip)
            return self._finite_difference_hypergradient(forwards, xw, yw, xa, ya, xi, momentum, weight_decay,
                                                         buffers, clip)
        finally:
            forwards.finish()

    def _finite_difference_hypergradient(self, forwards: HypergradientForwards, xw, yw, xa, ya, xi: float,
                                         momentum: float, weight_decay: float, buffers: list, clip: float
                                         ) -> list[torch.Tensor]:
        """Eq. 8: the Hessian-vector product by a central difference of radius 0.01 / ||grad_w' L_val||."""
        weights = self.weight_parameters()
        arch = self.architecture_parameters()
        backup = [p.detach().clone() for p in weights]
        try:
            # virtual step w' = w - xi * (c * grad_w L_train + weight_decay * w + momentum * buffer)
            grads = _grads(forwards.weights_loss(xw, yw), weights)
            coefficient = float(clip_coefficient(grads, clip))
            with torch.no_grad():
                for p, g, buf in zip(weights, grads, buffers, strict=True):
                    step = (g if coefficient == 1.0 else coefficient * g) + weight_decay * p
                    if buf is not None and momentum:
                        step = step + momentum * buf
                    p.sub_(xi * step)
            # grad_alpha and grad_w' of L_val(w', alpha)
            both = _grads(forwards.architecture_loss(xa, ya), list(arch) + list(weights))
            d_alpha, d_weights = both[:len(arch)], both[len(arch):]
            norm = torch.sqrt(sum((d * d).sum() for d in d_weights))
            eps = 0.01 / float(norm.clamp_min(1e-12))
            # grad_alpha L_train at w +- eps * grad_w' L_val (around w, not w')
            hessian_terms = []
            for sign in (1.0, -1.0):
                with torch.no_grad():
                    for p, w, d in zip(weights, backup, d_weights, strict=True):
                        p.copy_(w + sign * eps * d)
                hessian_terms.append(_grads(forwards.weights_loss(xw, yw), arch))
            scale = xi * coefficient  # the virtual step moved along c * grad: its alpha-derivative is c * Hessian
            return [da - scale * (gp - gm) / (2 * eps) for da, gp, gm in zip(d_alpha, *hessian_terms, strict=True)]
        finally:
            with torch.no_grad():
                for p, w in zip(weights, backup, strict=True):
                    p.copy_(w)

    def _exact_hypergradient(self, forwards: HypergradientForwards, xw, yw, xa, ya, xi: float, momentum: float,
                             weight_decay: float, buffers: list, clip: float) -> list[torch.Tensor]:
        """grad_alpha L_val(w'(alpha), alpha) by autograd: the virtual step's gradient keeps its graph
        (``create_graph``), the validation loss runs with w' substituted, one backward to alpha."""
        weights = self.weight_parameters()
        arch = self.architecture_parameters()
        grads = torch.autograd.grad(forwards.weights_loss(xw, yw), weights, create_graph=True, allow_unused=True)
        grads = [torch.zeros_like(p) if g is None else g for p, g in zip(weights, grads, strict=True)]
        coefficient = clip_coefficient(grads, clip)
        virtual = []
        for p, g, buf in zip(weights, grads, buffers, strict=True):
            step = coefficient * g + weight_decay * p.detach()
            if buf is not None and momentum:
                step = step + momentum * buf
            virtual.append(p.detach() - xi * step)
        return _grads(forwards.architecture_loss(xa, ya, virtual), arch)


def _grads(loss: torch.Tensor, params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """d loss / d params, zeros for parameters the loss does not reach."""
    grads = torch.autograd.grad(loss, list(params), allow_unused=True)
    return [torch.zeros_like(p) if g is None else g.detach() for p, g in zip(params, grads, strict=True)]


def check_compile(compile: str, unrolled: bool) -> None:
    """``model.compile``: a known mode or backend, first order, and a torch that can compile here."""
    if compile not in get_args(CompileMode):
        raise RecipeError(f"model.compile must be one of {', '.join(get_args(CompileMode))} (or unset), got {compile!r}")
    if unrolled:
        raise RecipeError("model.compile applies to first-order steps; the second-order virtual step runs the forward "
                          "with substituted weights (set model.unrolled: false or leave model.compile unset)")
    import torch._dynamo

    if not torch._dynamo.is_dynamo_supported():
        raise RecipeError(f"model.compile: torch.compile is not supported with this Python/torch "
                          f"({torch.__version__}); leave model.compile unset")
