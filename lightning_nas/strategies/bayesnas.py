"""BayesNAS: a Bayesian approach for neural architecture search (Zhou, Yang, Wang & Pan, ICML 2019).

BayesNAS treats one-shot NAS as pruning the one-shot model. Every edge and every operation on it is
gated by a *switch*, a scalar multiplying its output, and the switches get sparse Gaussian priors
(automatic relevance determination, ARD): s_k ~ N(0, gamma_k). The priors are *hierarchical*
(HARD): an operation's switch depends on the switch of the edge that carries it, so dropping an
edge drops all its operations and the zero operation needs no switch of its own (the paper's
Fig. 1, (c)-(f)). The prior variances are learnt by type-II maximum likelihood with a Laplace
approximation of the switches' posterior, which turns into an iteratively re-weighted group-lasso
(Sec. 3-4, Alg. 1): train the one-shot model for one epoch on

    L(w, s) + sum_k lambda_k * omega_k * ||s_k||_2                                        (training cost)

then, with H_k the curvature of the data loss at the trained switches,

    C_k     = (1 / gamma_k + H_k / lambda_k)^-1                      Laplace posterior variance
    omega_k = sqrt(| 1 / gamma_k - C_k / gamma_k^2 |)               the re-weighting of the penalty
    gamma_k = ||s_k||_2 / omega_k                                   the new prior variance
    gamma_op <- (1 / gamma_op + 1 / gamma_edge)^-1                  an operation under its edge (HARD)

and prune the switches whose prior variance has collapsed (gamma_k <= ``prune_threshold``): their
posterior is a point mass at zero. The final architecture is the space's own ``decode`` of the
surviving relevances gamma (pruned: 0).

The update lines are the closed forms of Alg. 1 of the paper, written here as the authors' code
(github.com/BayesNAS/BayesNAS, ``search/Algorithm.py``: ``Algorithm.update`` and ``loss_cal``)
computes them, which pins what the text leaves open: the curvature enters divided by lambda (the
data term's temperature), omega takes the absolute value under the root, gamma is stored after the
combination with its edge's and is the prior of the next update. The paper's text was not at hand
when this module was written, so its equation numbers are not cited; every formula above is the
one its code runs. (Checked: the authors' ``Algorithm.update``, run on CPU with a stub network and
given Hessians, gives the gammas of ``laplace_update`` + ``under_parent`` up to float32 rounding.)

What differs from the authors' code, and why:

- The switch hierarchy is the one every relaxed space states: one *edge switch* per row of an
  operation group (the authors' ``switch_all`` on each edge's input) and one *operation switch* per
  entry; a vector group (edge weights over a node's inputs) holds edge switches only. Cells share
  their switches, as the relaxation shares its weights; the authors' per-cell switches with one
  prior per position across cells (``switch_value_square`` summed over cells) become one switch.
  Node-to-node dependency beyond edge -> operation is not stated by the contract and not modelled.
- The switches multiply the operation outputs (``forward_weighted``: w_edge * w_op * op(x)), where
  the authors' edge switch scales the edge's input; the two agree for the (positively homogeneous)
  convolutions without BatchNorm statistics and differ by the BN normalisation otherwise.
- The curvature: the authors back-propagate a diagonal Hessian through their own network, layer by
  layer (``tail_pass``/``sel_pass``: a Gauss-Newton-like recursion on the activations' gradients).
  A strategy here drives any relaxed space, never a concrete network, so it takes the diagonal of
  the empirical Fisher of the switches instead, E_n[(d loss_n / d s_k)^2], the Gauss-Newton
  approximation of the Hessian of the per-sample loss at the trained switches, estimated from the
  gradients every training step already computes (``fisher_diagonal``). It is non-negative, as the
  Laplace precision must be, and costs nothing beyond the step.
- A switch the data never reaches (the ``none`` operation: its output is zero, so its gradient is
  exactly zero all epoch) has no evidence (H = 0, omega = 0) and is pruned: BayesNAS represents
  the zero operation by pruning, not by a switch.
- The prior's start: the authors draw gamma and omega uniformly from [0, 1) (``torch.rand``);
  ``prior_init: ones`` starts every switch without preference instead.
"""
from __future__ import annotations

from typing import Any, Hashable, Literal

import torch
from torch import nn

from lightning_nas.errors import RecipeError, UnsupportedCombinationError
from lightning_nas.registry import STRATEGIES
from lightning_nas.seeding import generator
from lightning_nas.spaces.decisions import WeightGroup
from lightning_nas.strategies.base import Batch, SearchStrategy
from lightning_nas.strategies import settings
from lightning_nas.strategies.settings import WeightOptimizer

#: The authors' search (``search/main.py``): SGD lr 0.1, momentum 0.9, weight decay 1e-4, no schedule,
#: for the weights; the switches take the same SGD without weight decay.
BAYESNAS_WEIGHTS = WeightOptimizer(lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=False, schedule="constant")
PriorInit = Literal["uniform", "ones"]


# ---------------------------------------------------------------------------------------------- the equations
def laplace_update(gamma: torch.Tensor, curvature: torch.Tensor, switch: torch.Tensor, lam: float
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One update of Alg. 1 for independent scalar switches (elementwise).

    Args:
        gamma: the prior variances of the switches (> 0).
        curvature: H, the diagonal curvature of the data loss at ``switch`` (>= 0).
        switch: the trained switches s.
        lam: lambda, the sparsity weight (the data term's temperature).

    Returns ``(C, omega, gamma')``: the Laplace posterior variance C = (1/gamma + H/lambda)^-1, the
    penalty weight omega = sqrt(|1/gamma - C/gamma^2|) = sqrt(h / (1 + gamma h)) with h = H/lambda, and the new prior variance gamma' = |s| / omega
    (0 where omega is 0: no evidence for the switch, which is then pruned).
    """
    h = curvature / lam
    covariance = 1.0 / (1.0 / gamma + h)
    # 1/gamma - C/gamma^2 = h / (1 + gamma h): the same value without the cancellation of two nearly
    # equal terms (exactly 0 where H is 0; the authors' absolute value only guards that rounding)
    omega = torch.sqrt(h / (1.0 + gamma * h))
    new_gamma = torch.where(omega > 0, switch.abs() / torch.where(omega > 0, omega, torch.ones_like(omega)),
                            torch.zeros_like(omega))
    return covariance, omega, new_gamma


def under_parent(child: torch.Tensor, parent: torch.Tensor) -> torch.Tensor:
    """HARD's dependency: an operation's prior precision adds its edge's, 1/gamma = 1/gamma_op + 1/gamma_edge
    (0 where either variance is 0: a pruned edge prunes its operations)."""
    both = (child > 0) & (parent > 0)
    safe_child = torch.where(both, child, torch.ones_like(child))
    safe_parent = torch.where(both, parent, torch.ones_like(parent))
    return torch.where(both, 1.0 / (1.0 / safe_child + 1.0 / safe_parent), torch.zeros_like(child))


def fisher_diagonal(sum_batch_squares: torch.Tensor, sum_gradients: torch.Tensor, steps: int, samples: int
                    ) -> torch.Tensor:
    """E_n[g_n^2], the diagonal of the empirical Fisher of the per-sample loss, from ``steps`` mini-batch
    mean gradients g_t of batch size B_t: with ``sum_batch_squares`` = sum_t B_t g_t^2,
    ``sum_gradients`` = sum_t g_t and B = samples / steps, E[B g_t^2] = E[g_n^2] + (B - 1) E[g_n]^2, so
    E[g_n^2] = mean_t(B_t g_t^2) - (B - 1) mean_t(g_t)^2, bounded below by E[g_n]^2 (a variance is >= 0)."""
    mean_sq = sum_batch_squares / steps
    mean = sum_gradients / steps
    batch = samples / steps
    return torch.maximum(mean_sq - (batch - 1.0) * mean ** 2, mean ** 2)


# ---------------------------------------------------------------------------------------------- the switches
class Switches(nn.Module):
    """One block of switches (an operation group's entries, or its rows' edge switches) and the
    state of their prior: gamma, omega, the last posterior variance and curvature, the pruning mask
    and this epoch's gradient statistics. All of it is in the state dict, so a checkpoint resumes
    the prior exactly."""

    def __init__(self, shape: tuple[int, ...], gamma: torch.Tensor, omega: torch.Tensor) -> None:
        super().__init__()
        self.value = nn.Parameter(torch.ones(shape))  # the authors' switches start at 1 (``OneShot.py``)
        self.register_buffer("gamma", gamma.clone())
        self.register_buffer("omega", omega.clone())
        self.register_buffer("covariance", torch.zeros(shape))
        self.register_buffer("curvature", torch.zeros(shape))
        self.register_buffer("alive", torch.ones(shape, dtype=torch.bool))
        self.register_buffer("sum_batch_squares", torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("sum_gradients", torch.zeros(shape, dtype=torch.float64))

    def gated(self) -> torch.Tensor:
        """The switch values with pruned switches at exactly zero (no gradient reaches them)."""
        return self.value * self.alive

    def penalty(self, lam: float) -> torch.Tensor:
        """lambda * sum_k omega_k * |s_k| (a scalar switch per prior: ||s_k||_2 = |s_k|)."""
        return lam * (self.omega * self.gated().abs()).sum()

    def accumulate(self, batch: int) -> None:
        """Add this step's (data-loss) gradient to the epoch's statistics."""
        g = self.value.grad.detach().double() if self.value.grad is not None else torch.zeros_like(self.sum_gradients)
        self.sum_batch_squares += batch * g * g
        self.sum_gradients += g

    def add_penalty_gradient(self, lam: float) -> None:
        """d/ds of ``penalty``: lambda * omega * sign(s) on the surviving switches."""
        if self.value.grad is None:
            self.value.grad = torch.zeros_like(self.value)
        self.value.grad += lam * self.omega * torch.sign(self.value.detach()) * self.alive

    def laplace(self, lam: float, steps: int, samples: int) -> dict[str, torch.Tensor]:
        """Alg. 1's update from this epoch's statistics, without changing anything (the edge
        combination and the pruning are the caller's): the new curvature, covariance, omega, gamma."""
        curvature = fisher_diagonal(self.sum_batch_squares, self.sum_gradients, steps, samples).float()
        alive = self.alive & (self.gamma > 0)
        covariance, omega, gamma = laplace_update(torch.where(alive, self.gamma, torch.ones_like(self.gamma)),
                                                  curvature, self.value.detach(), lam)
        zero = torch.zeros_like(gamma)
        return {"curvature": curvature, "covariance": torch.where(alive, covariance, zero),
                "omega": torch.where(alive, omega, zero), "gamma": torch.where(alive, gamma, zero)}

    @torch.no_grad()
    def store(self, prior: dict[str, torch.Tensor]) -> None:
        """Keep an updated prior (``laplace`` with ``gamma`` and ``alive`` final), prune for good and
        start the next epoch's statistics."""
        for key in ("curvature", "covariance", "omega", "gamma", "alive"):
            getattr(self, key).copy_(prior[key])
        self.value.mul_(self.alive)
        self.sum_batch_squares.zero_()
        self.sum_gradients.zero_()


@STRATEGIES.register("bayesnas")
class BayesNAS(SearchStrategy):
    """Args (defaults: the authors' code, github.com/BayesNAS/BayesNAS, ``search/``):
        lambda_edge: lambda of the edge switches (``--lambda_origin``); 0.01, the setting of the README's
            search command and of the pre-trained models (the paper reports lambda 0.01, 0.007, 0.005).
        lambda_op: lambda of the operation switches (``--lambda_child``); 0.01 likewise.
        warmup_epochs: epochs that train only the weights, every switch at 1, before the first epoch
            of the regularised cost (the authors' code: one epoch on its normal loader).
        prune_threshold: a switch whose prior variance gamma falls to this value or below is pruned.
            The authors' code saves gamma and leaves the selection to the reader; 1e-3 is ours.
        prior_init: the initial gamma and omega: ``uniform`` on [0, 1) as the authors' code draws
            them (seeded), or ``ones``.
        optimizer: SGD lr 0.1, momentum 0.9, weight decay 1e-4, constant (``search/main.py``); the
            switches use it without weight decay.
        BayesNAS is single-level: weights and switches learn on the same training data (no
        architecture split), one update of the prior after every epoch of the regularised cost.
    """

    requires = frozenset({"decisions", "relaxation"})
    answer = "derived"
    #: the switches and the prior update from the first epoch on (the tiny run has one epoch)
    test_options = {"warmup_epochs": 0}

    def __init__(self, lambda_edge: float = 0.01, lambda_op: float = 0.01, warmup_epochs: int = 1,
                 prune_threshold: float = 1e-3, prior_init: PriorInit = "uniform",
                 optimizer: WeightOptimizer = BAYESNAS_WEIGHTS, **kwargs: Any) -> None:
        for key, value in (("lambda_edge", lambda_edge), ("lambda_op", lambda_op)):
            if not value > 0:
                raise RecipeError(f"model.{key} must be > 0 (the sparsity weight divides the curvature), got {value}")
        if warmup_epochs < 0 or prune_threshold < 0:
            raise RecipeError(f"model.warmup_epochs ({warmup_epochs}) and model.prune_threshold ({prune_threshold}) "
                              "must be >= 0")
        if prior_init not in ("uniform", "ones"):
            raise RecipeError(f"model.prior_init must be 'uniform' (the authors' code) or 'ones', got {prior_init!r}")
        try:
            super().__init__(optimizer=optimizer, **kwargs)
        except UnsupportedCombinationError as error:
            raise UnsupportedCombinationError(
                f"{error}; BayesNAS places its sparse (ARD) priors on the switches of the one-shot model's relaxed "
                "edges and operations") from None
        self.lambda_edge, self.lambda_op = lambda_edge, lambda_op
        self.warmup_epochs, self.prune_threshold = warmup_epochs, prune_threshold
        self.groups: list[WeightGroup] = [g for g in self.space.relaxation if not g.edge_normalisation]
        gen = generator(self.hparams.seed, "bayesnas-prior")

        def block(shape: tuple[int, ...]) -> Switches:
            if prior_init == "ones":
                return Switches(shape, torch.ones(shape), torch.ones(shape))
            gamma = torch.rand(shape, generator=gen)
            return Switches(shape, gamma, torch.rand(shape, generator=gen))

        #: one switch per entry of every group; for operation groups (matrices) the operation switches
        self.op_switches = nn.ModuleDict({g.name: block(g.shape) for g in self.groups})
        #: one edge switch per row of every operation group, the parent of the row's operation switches
        self.edge_switches = nn.ModuleDict({g.name: block(g.shape[:1]) for g in self.groups if len(g.shape) == 2})
        self.register_buffer("curvature_steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("curvature_samples", torch.zeros((), dtype=torch.long))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self.register_buffer("statistics_epoch", torch.zeros((), dtype=torch.long))
        self._global_batch = 0

    # ------------------------------------------------------------------ the switches
    def _named_blocks(self) -> dict[str, tuple[Switches, float]]:
        """Every block of switches with its lambda: ``edge:<group>`` (edge switches of an operation
        group) and ``op:<group>`` (its operation switches; a vector group's edge switches)."""
        blocks = {f"edge:{name}": (block, self.lambda_edge) for name, block in self.edge_switches.items()}
        for g in self.groups:
            blocks[f"op:{g.name}"] = (self.op_switches[g.name], self.lambda_edge if len(g.shape) == 1 else self.lambda_op)
        return blocks

    def _blocks(self) -> list[tuple[Switches, float]]:
        return list(self._named_blocks().values())

    def switch_weights(self) -> dict[str, torch.Tensor]:
        """What ``forward_weighted`` multiplies each option with: edge switch x operation switch
        (vector groups: the edge switch); pruned switches are exactly 0."""
        weights = {}
        for g in self.groups:
            ops = self.op_switches[g.name].gated()
            weights[g.name] = ops * self.edge_switches[g.name].gated()[:, None] if len(g.shape) == 2 else ops
        return weights

    def penalty(self) -> torch.Tensor:
        """The re-weighted group-lasso term of the training cost (Alg. 1; ``loss_cal`` of the authors)."""
        return sum(block.penalty(lam) for block, lam in self._blocks())

    def relevance(self) -> dict[str, torch.Tensor]:
        """Per group, the posterior relevance of every option: its operation's prior variance after the
        update the statistics so far lead to (combined with its edge's), 0 where pruned, scaled to at
        most 1 per group."""
        priors = self.posterior_prior()
        out = {}
        for g in self.groups:
            gamma = priors[f"op:{g.name}"]["gamma"]
            if len(g.shape) == 2:
                gamma = gamma * priors[f"edge:{g.name}"]["alive"][:, None]
            top = gamma.max()
            out[g.name] = (gamma / top if top > 0 else gamma).detach().float().cpu()
        return out

    @property
    def searching(self) -> bool:
        """True once the warm-up is over: the switches learn and the prior is updated."""
        return self.current_epoch >= self.warmup_epochs

    def architecture_parameters(self) -> list[nn.Parameter]:
        return [block.value for block, _ in self._blocks()]

    @torch.no_grad()
    def derive_architecture(self) -> Hashable:
        """The space's own decoding of the surviving relevances (pruned options: 0)."""
        return self.space.decode(self.relevance())

    # ------------------------------------------------------------------ training
    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        x, y = batch["weights"]
        world = self.trainer.world_size if self._trainer is not None else 1
        self._global_batch = len(y) * world
        with self.carried(batch, "weights"):
            loss = self.classification_step(y, self.supernet.forward_weighted(x, self.switch_weights()))
        if self.searching:
            self.log_train("arch/penalty", self.penalty(), len(y))
        return self.regularised(loss)

    def on_after_backward(self) -> None:
        """The switches' gradients are the data loss's here (synchronised across processes): record
        them for the curvature, then add the penalty's gradient, which the loss leaves out so that
        the statistics see the data term alone. During the warm-up the switches stay at 1."""
        if not self.searching:
            for block, _ in self._blocks():
                if block.value.grad is not None:
                    block.value.grad.zero_()
            return
        for block, lam in self._blocks():
            block.accumulate(self._global_batch)
            block.add_penalty_gradient(lam)
        self.curvature_steps += 1
        self.curvature_samples += self._global_batch
        self.statistics_epoch.fill_(self.current_epoch)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """The prior update after an epoch of the regularised cost (Alg. 1), made when the next epoch
        starts: a checkpoint taken at the end of the last step (before any epoch-end hook) then holds
        the statistics it is made from, and resumes to the same update."""
        if int(self.curvature_steps) > 0 and int(self.statistics_epoch) < self.current_epoch:
            self.update_prior()

    def posterior_prior(self) -> dict[str, dict[str, torch.Tensor]]:
        """The prior of every block after the update the statistics gathered so far lead to (Alg. 1:
        Laplace update, edge -> operation dependency, pruning), keyed like ``_named_blocks``; the stored
        prior where there are no statistics."""
        steps, samples = int(self.curvature_steps), int(self.curvature_samples)
        priors: dict[str, dict[str, torch.Tensor]] = {}
        for key, (block, lam) in self._named_blocks().items():
            if steps == 0:
                priors[key] = {k: getattr(block, k).clone() for k in ("curvature", "covariance", "omega", "gamma")}
            else:
                priors[key] = block.laplace(lam, steps, samples)
        if steps > 0:
            for name in self.edge_switches:
                ops, edge = priors[f"op:{name}"], priors[f"edge:{name}"]
                ops["gamma"] = under_parent(ops["gamma"], edge["gamma"][:, None].expand_as(ops["gamma"]))
        for key, (block, _) in self._named_blocks().items():
            alive = block.alive & (priors[key]["gamma"] > self.prune_threshold) if steps > 0 else block.alive.clone()
            priors[key]["alive"] = alive
            priors[key]["gamma"] = priors[key]["gamma"] * alive
        return priors

    @torch.no_grad()
    def update_prior(self) -> None:
        """Apply the update of ``posterior_prior`` and start the next epoch's statistics."""
        priors = self.posterior_prior()
        for key, (block, _) in self._named_blocks().items():
            block.store(priors[key])
        self.curvature_steps.zero_()
        self.curvature_samples.zero_()
        self.updates += 1
        if self._trainer is not None:
            alive = torch.cat([b.alive.reshape(-1).float() for b, _ in self._blocks()])
            self.log("arch/surviving_switches", float(alive.mean()), on_step=False, on_epoch=True)

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self) -> Any:
        """One SGD: the weights with weight decay, the switches without (the authors' two optimisers
        share every other setting), under the weights' schedule."""
        opt = self.optim
        optimizer = torch.optim.SGD([{"params": self.weight_parameters()},
                                     {"params": self.architecture_parameters(), "weight_decay": 0.0}],
                                    lr=opt.lr, momentum=opt.momentum, weight_decay=opt.weight_decay,
                                    nesterov=opt.nesterov and opt.momentum > 0, foreach=settings.FOREACH)
        if opt.schedule == "cosine":
            epochs = max(1, int(self.trainer.max_epochs or 1)) if self._trainer is not None else 1
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=opt.min_lr)
        else:
            scheduler = torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
