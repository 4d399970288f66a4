"""The search-strategy abstraction: a LightningModule over one shared super-net.

Every algorithm differs from the others only in how it chooses or weights paths of the
super-net, which extra (architecture) parameters and optimisers it owns, and how it derives its
final discrete architecture. This base class owns everything else: the space, the super-net built
from the registered network of that space, the weight optimiser and schedule, the seeded
architecture generator (identical on every DDP rank, saved in checkpoints) and the hooks the
callbacks read.

A strategy overrides ``training_step`` (or ``sample_architecture`` only, for single-path
sampling), and where it has a current opinion about the best architecture,
``derive_architecture``. Strategies with architecture parameters set
``uses_architecture_split = True`` and ``automatic_optimization = False``.
"""
from __future__ import annotations

import inspect

from typing import Any, Callable, Hashable, Literal, Optional

import torch
import torch.nn.functional as F
from pytorch_lightning import LightningModule
from torch import nn

from lightning_nas.nn import NETWORKS
from lightning_nas.seeding import generator
from lightning_nas.spaces import SPACES, SearchSpace


#: Space attributes that fix a network's structure, passed on when the network takes them.
STRUCTURE = ("operations", "num_nodes")


class SearchStrategy(LightningModule):
    """Args:
        space: registered search space (``nb201``).
        space_options: keyword arguments of the space (e.g. an ``operations`` subset).
        network: keyword arguments of the space's super-net (``C``, ``N``, ``affine``, ...).
        num_classes, in_channels: linked from the DataModule by the CLI.
        lr, momentum, weight_decay, nesterov: SGD for the shared weights. The default learning
            rate 0.025 is DARTS'; super-nets want a lower rate than stand-alone networks
            ("How to Train Your Super-Net", Sec. 4.3).
        lr_schedule, min_lr: cosine annealing to ``min_lr`` over ``max_epochs``, or constant.
        seed: the run seed (linked from ``seed_everything``); seeds architecture sampling.
    """

    uses_architecture_split = False

    def __init__(self, space: str = "nb201", space_options: Optional[dict[str, Any]] = None,
                 network: Optional[dict[str, Any]] = None, num_classes: int = 10, in_channels: int = 3,
                 lr: float = 0.025, momentum: float = 0.9, weight_decay: float = 5e-4, nesterov: bool = True,
                 lr_schedule: Literal["cosine", "constant"] = "cosine", min_lr: float = 0.001, seed: int = 0) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.space: SearchSpace = _build(SPACES.get(space), space_options, "model.space_options")
        options = dict(network or {})
        accepted = inspect.signature(NETWORKS.get(space)).parameters
        for name in STRUCTURE:  # the network's shape follows the space unless the recipe says otherwise
            if name not in options and name in accepted and hasattr(self.space, name):
                options[name] = getattr(self.space, name)
        self.supernet: nn.Module = self.build_network(options, num_classes=num_classes, in_channels=in_channels)
        self.arch_generator = generator(seed, "architecture")

    # ------------------------------------------------------------------ what strategies override
    def sample_architecture(self) -> Hashable:
        """The architecture trained in this step (uniform by default: random search with WS)."""
        return self.space.sample(self.arch_generator)

    def derive_architecture(self) -> Optional[Hashable]:
        """The strategy's current choice of discrete architecture; None where it has none."""
        return None

    def candidate_architectures(self, count: int, gen: torch.Generator) -> list[Hashable]:
        """Architectures the final selection scores: uniform samples unless the policy has a view."""
        return self.space.sample_many(min(count, self.space.size), gen)

    def architecture_parameters(self) -> list[nn.Parameter]:
        return []

    # ------------------------------------------------------------------ shared machinery
    def build_network(self, options: dict[str, Any], **fixed: Any) -> nn.Module:
        """The space's registered network (a super-net unless a subclass fixes ``arch``)."""
        return _build(NETWORKS.get(self.hparams.space), options, "model.network", **fixed)

    def forward(self, x: torch.Tensor, arch: Hashable) -> torch.Tensor:
        return self.supernet(x, arch)

    def architecture_forward(self, arch: Hashable) -> Callable[[torch.Tensor], torch.Tensor]:
        """A function running ``arch`` with the shared weights (what callbacks score)."""
        return lambda x: self.supernet(x, arch)

    def weight_parameters(self) -> list[nn.Parameter]:
        return list(self.supernet.parameters())

    def classification_step(self, x: torch.Tensor, y: torch.Tensor, logits: torch.Tensor, prefix: str = "train") -> torch.Tensor:
        loss = F.cross_entropy(logits, y)
        acc = (logits.argmax(-1) == y).float().mean() * 100
        self.log(f"{prefix}/loss", loss, prog_bar=True, on_step=True, on_epoch=True)
        self.log(f"{prefix}/accuracy", acc, prog_bar=True, on_step=False, on_epoch=True)
        return loss

    def training_step(self, batch: dict[str, tuple[torch.Tensor, torch.Tensor]], batch_idx: int) -> torch.Tensor:
        x, y = batch["weights"]
        arch = self.sample_architecture()
        return self.classification_step(x, y, self(x, arch))

    def weight_optimizer(self) -> tuple[torch.optim.Optimizer, Any]:
        hp = self.hparams
        optimizer = torch.optim.SGD(self.weight_parameters(), lr=hp.lr, momentum=hp.momentum,
                                    weight_decay=hp.weight_decay, nesterov=hp.nesterov and hp.momentum > 0)
        if hp.lr_schedule == "cosine":
            epochs = max(1, int(self.trainer.max_epochs or 1)) if self._trainer is not None else 1
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=hp.min_lr)
        else:
            scheduler = torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
        return optimizer, scheduler

    def configure_optimizers(self) -> Any:
        optimizer, scheduler = self.weight_optimizer()
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    # ------------------------------------------------------------------ exact resumption
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["architecture_generator"] = self.arch_generator.get_state()
        checkpoint["torch_rng_state"] = torch.get_rng_state()
        checkpoint["epoch_means"] = {
            "epoch": int(self.current_epoch),
            "means": {name: {"mean_value": m.mean_value.detach().cpu().clone(), "weight": m.weight.detach().cpu().clone()}
                      for name, m in self._epoch_means.items()}}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "architecture_generator" in checkpoint:
            self.arch_generator.set_state(checkpoint["architecture_generator"])
        if "torch_rng_state" in checkpoint:
            torch.set_rng_state(checkpoint["torch_rng_state"])
        self._restored_means = checkpoint.get("epoch_means")

    # ------------------------------------------------------------------ resumable epoch aggregates
    # Lightning does not checkpoint the running sums behind ``self.log(..., on_epoch=True)``: after a
    # mid-epoch resume an epoch mean would cover only the batches since the resume. During training,
    # mean-reduced epoch values are therefore accumulated in MeanMetric objects whose state this
    # module saves and restores (``on_save_checkpoint``), for every strategy, without changing names.
    @property
    def _epoch_means(self) -> dict[str, Any]:
        if "_epoch_means_store" not in self.__dict__:
            self.__dict__["_epoch_means_store"] = {}
        return self.__dict__["_epoch_means_store"]

    def log(self, name: str, value: Any, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        resumable = (not args and kwargs.get("on_epoch") is True and self._trainer is not None and self.trainer.training
                     and kwargs.get("reduce_fx", "mean") in ("mean", torch.mean) and "metric_attribute" not in kwargs
                     and isinstance(value, (torch.Tensor, float, int)) and not isinstance(value, bool))
        if not resumable:
            return super().log(name, value, *args, **kwargs)
        from pytorch_lightning.utilities.data import extract_batch_size
        from torchmetrics.aggregation import MeanMetric

        value = torch.as_tensor(value, dtype=torch.float32, device=self.device).detach()
        batch_size = kwargs.pop("batch_size", None)
        if batch_size is None:
            batch = getattr(self.trainer._results, "batch", None)
            batch_size = extract_batch_size(batch) if batch is not None else 1
        metric = self._epoch_means.get(name)
        if metric is None:
            metric = self._epoch_means[name] = MeanMetric(nan_strategy="disable").to(self.device)
            restored = getattr(self, "_restored_means", None)
            if restored and restored.get("epoch") == self.current_epoch and name in restored.get("means", {}):
                state = restored["means"][name]
                metric.mean_value = state["mean_value"].to(self.device)
                metric.weight = state["weight"].to(self.device)
                metric._update_count = 1
        metric.update(value, batch_size)
        kwargs.pop("sync_dist", None)  # MeanMetric.compute reduces over processes itself
        if kwargs.pop("on_step", False):
            super().log(f"{name}_step", value, on_step=True, on_epoch=False, batch_size=batch_size, **{
                k: v for k, v in kwargs.items() if k != "on_epoch"})
            name = f"{name}_epoch"
        kwargs["on_epoch"] = True
        super().log(name, metric, on_step=False, metric_attribute=f"_epoch_means[{name}]", **kwargs)


class FixedArchitecture(SearchStrategy):
    """A strategy whose answer is one architecture known up front (stand-alone training, the
    random-sampling baseline): it trains, derives and offers only ``self.architecture``."""

    architecture: Hashable

    def sample_architecture(self) -> Hashable:
        return self.architecture

    def derive_architecture(self) -> Hashable:
        return self.architecture

    def candidate_architectures(self, count: int, gen: torch.Generator) -> list[Hashable]:
        return [self.architecture]


def _build(factory: Callable[..., Any], options: Optional[dict[str, Any]], key: str, **fixed: Any) -> Any:
    """Call ``factory`` with recipe options, turning a wrong key into a one-line error naming it."""
    options = dict(options or {})
    parameters = inspect.signature(factory).parameters
    unknown = sorted(set(options) - set(parameters))
    if unknown:
        valid = ", ".join(name for name in parameters if name not in fixed and name != "self")
        raise ValueError(f"{key}: unknown option(s) {', '.join(unknown)} for {factory.__name__}; valid: {valid}")
    return factory(**options, **fixed)
