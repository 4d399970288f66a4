"""The search-strategy abstraction: a LightningModule over one shared super-net.

Every algorithm differs from the others only in how it chooses or weights paths of the
super-net, which extra (architecture) parameters and optimisers it owns, and what its final
answer is. This base class owns everything else: the space and the super-net built from the
space's registered network, the weight optimiser and schedule, the seeded architecture generator
(identical on every DDP rank, saved in checkpoints), resumable epoch means, and the hooks the
callbacks read.

A strategy states what it needs from a space (``requires``): ``decisions`` (every space has
them), ``relaxation`` (gradient-based strategies) or ``partial_channels`` (a network whose mixed
edges can run on 1/K of the channels). A pair that cannot work raises
``UnsupportedCombinationError`` at construction, in one line naming both.

Its answer (``answer``): ``derived`` - the strategy's own discrete architecture
(``derive_architecture``: decoded relaxation, a fixed architecture); ``selection`` - the best of
``candidate_architectures`` by shared-weight score (RandomNAS/SPOS, FairNAS, ENAS), which the final
selection callback computes.

A registered strategy is checked when its module is imported (``check_contract``), and declares
the small options the registry-driven tests run it with (``test_options``), as networks declare
``tiny_options``. A strategy class outside the registry still trains, with a one-line notice that
the registry-driven tests do not cover it.
"""
from __future__ import annotations

import contextlib
import dataclasses
import inspect
import sys
from types import MappingProxyType
from typing import Any, Callable, ClassVar, ContextManager, Hashable, Literal, Mapping, Optional

import torch
import torch.nn.functional as F
from pytorch_lightning import LightningModule
from torch import nn

from lightning_nas.errors import RecipeError, UnsupportedCombinationError
from lightning_nas.nn import NETWORKS, SuperNet
from lightning_nas.registry import STRATEGIES, ContractError
from lightning_nas.seeding import generator
from lightning_nas.spaces import SPACES, SearchSpace
from lightning_nas.strategies.epoch_means import EpochMeans
from lightning_nas.strategies import settings
from lightning_nas.strategies.settings import DEFAULT_WEIGHTS, WeightOptimizer

Requirement = Literal["decisions", "relaxation", "partial_channels"]
Batch = dict[str, tuple[torch.Tensor, torch.Tensor]]


class SearchStrategy(LightningModule):
    """Args:
        space: registered search space (``nb201``, ``darts_rnn``, ...).
        space_options: keyword arguments of the space (e.g. an ``operations`` subset).
        network: keyword arguments of the space's network (``C``, ``N``, ``affine``, ...).
        num_classes, in_channels: linked from the DataModule by the CLI.
        optimizer: SGD for the shared weights (``WeightOptimizer``); the default is SPOS/RandomNAS
            on NB201: lr 0.025, nesterov momentum 0.9, weight decay 5e-4, cosine to 0.001.
        seed: the run seed (linked from ``seed_everything``); seeds architecture sampling.
    """

    #: what the strategy needs from the space and its network
    requires: ClassVar[frozenset[str]] = frozenset({"decisions"})
    #: where the strategy's final answer comes from: its own derivation or shared-weight selection
    answer: ClassVar[Literal["derived", "selection"]] = "selection"
    #: data the strategy needs besides the weights' training data, as the share of the training data
    #: (what the validation split leaves) its paper holds out: ``{"arch_split": 0.5}`` for strategies
    #: that learn architecture parameters on a split of their own. A recipe that sets none gets this
    #: share, with a one-line notice, before anything is built (``lightning_nas.run.requirements``).
    data_needs: ClassVar[Mapping[str, float]] = MappingProxyType({})
    #: False for strategies that build their own (stand-alone) network instead of the super-net
    builds_supernet: ClassVar[bool] = True
    #: False for strategies that train nothing (the random-sampling baseline may run zero epochs)
    trains: ClassVar[bool] = True
    #: options (keys under ``model.init_args``, dotted into typed settings) with which one training
    #: step on a tiny recipe exercises everything the strategy learns; the registry-driven tests
    #: (determinism, kill-and-resume, DDP, the contract) run every registered strategy with them
    test_options: ClassVar[dict[str, Any]] = {}

    def __init__(self, space: str = "nb201", space_options: Optional[dict[str, Any]] = None,
                 network: Optional[dict[str, Any]] = None, num_classes: int = 10, in_channels: int = 3,
                 optimizer: WeightOptimizer = DEFAULT_WEIGHTS, seed: int = 0) -> None:
        super().__init__()
        self.save_hyperparameters()
        if STRATEGIES.name_of(type(self)) is None:
            _notice(f"{type(self).__module__}.{type(self).__qualname__} is not a registered strategy: it trains, but "
                    "the registry-driven tests do not cover it (register it with @STRATEGIES.register in a module of "
                    "lightning_nas/strategies)")
        self.space: SearchSpace = build(SPACES.get(space), space_options, "model.space_options")
        self.optim = optimizer
        self.network_options = dict(network or {})
        self.arch_generator = generator(seed, "architecture")
        self.epoch_means = EpochMeans()
        self._rank_state_to_load: Any = None  # this process's network state from a checkpoint (DDP)
        self.supernet: SuperNet
        if self.builds_supernet:  # nothing overridable runs here: subclasses have not set their fields yet
            _check_support(type(self), space, self.space)
            self.supernet = build(NETWORKS.get(space), self.network_options, "model.network", space=self.space,
                                  num_classes=num_classes, in_channels=in_channels)

    @property
    def uses_architecture_split(self) -> bool:
        """Whether the DataModule must serve an ``arch`` split beside ``weights`` (``data_needs``)."""
        return "arch_split" in self.data_needs

    # ------------------------------------------------------------------ the contract
    @classmethod
    def check_contract(cls) -> None:
        """ContractError naming the class and what it lacks (run when the strategy is registered)."""
        unknown = sorted(set(cls.requires) - {"decisions", "relaxation", "partial_channels"})
        if unknown:
            raise ContractError(f"strategy {cls.__name__}: requires names {', '.join(unknown)}; known: decisions, "
                                "relaxation, partial_channels")
        if cls.answer not in ("derived", "selection"):
            raise ContractError(f"strategy {cls.__name__}: answer must be 'derived' or 'selection', not {cls.answer!r}")
        if cls.answer == "derived" and cls.derive_architecture is SearchStrategy.derive_architecture:
            raise ContractError(f"strategy {cls.__name__}: answer = 'derived' needs its own derive_architecture()")
        accepted = cls.option_names()
        unknown = sorted({key.split(".")[0] for key in cls.test_options} - accepted)
        if unknown:
            raise ContractError(f"strategy {cls.__name__}: test_options name {', '.join(unknown)}, which its "
                                f"constructor does not take")

    @classmethod
    def option_names(cls) -> set[str]:
        """Every constructor option, including those passed on to the base classes through ``**kwargs``."""
        names: set[str] = set()
        for klass in cls.__mro__:
            if "__init__" in vars(klass) and issubclass(klass, SearchStrategy):
                names |= {p.name for p in inspect.signature(klass.__init__).parameters.values()
                          if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name != "self"}
        return names

    @classmethod
    def options_for_tests(cls, space: SearchSpace) -> dict[str, Any]:
        """``test_options`` for a run on ``space`` (strategies whose options depend on the space, such
        as the architecture of a stand-alone network, override this)."""
        return dict(cls.test_options)

    @classmethod
    def test_arguments(cls, space: SearchSpace) -> dict[str, Any]:
        """``options_for_tests`` as constructor arguments: a dotted key replaces one field of the
        typed setting the signature gives as default (``architecture_optimizer.warmup_epochs: 0``)."""
        arguments: dict[str, Any] = {}
        for key, value in cls.options_for_tests(space).items():
            name, _, field = key.partition(".")
            if not field:
                arguments[name] = value
                continue
            setting = arguments.get(name, _default_option(cls, name))
            arguments[name] = dataclasses.replace(setting, **{field: value})
        return arguments

    def build_network(self, **fixed: Any) -> SuperNet:
        """The space's registered network with the recipe's options (``arch=...``: a stand-alone
        network; what ``FixedArchitecture`` subclasses call once they know their architecture)."""
        return build(NETWORKS.get(self.hparams.space), self.network_options, "model.network", space=self.space,
                     num_classes=self.hparams.num_classes, in_channels=self.hparams.in_channels, **fixed)

    # ------------------------------------------------------------------ what strategies override
    def sample_architecture(self) -> Hashable:
        """The architecture trained in this step (uniform by default: random search with WS)."""
        return self.space.sample(self.arch_generator)

    def derive_architecture(self) -> Optional[Hashable]:
        """The strategy's current discrete architecture; None where only selection can answer."""
        return None

    def candidate_architectures(self, count: int, gen: torch.Generator) -> list[Hashable]:
        """Architectures the final selection scores: uniform samples unless the policy has a view."""
        return self.space.sample_many(min(count, self.space.size), gen)

    @property
    def has_policy(self) -> bool:
        """True where ``candidate_architectures`` follows a learned policy rather than the uniform draw."""
        return type(self).candidate_architectures is not SearchStrategy.candidate_architectures

    def architecture_parameters(self) -> list[nn.Parameter]:
        return []

    def architecture_forward(self, arch: Hashable) -> Callable[[torch.Tensor], torch.Tensor]:
        """A function running ``arch`` with the shared weights (what callbacks score)."""
        return lambda x: self.supernet(x, arch)

    def weight_parameters(self) -> list[nn.Parameter]:
        return list(self.supernet.parameters())

    # ------------------------------------------------------------------ training
    def forward(self, x: torch.Tensor, arch: Hashable) -> torch.Tensor:
        return self.supernet(x, arch)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        x, y = batch["weights"]
        arch = self.sample_architecture()
        with self.carried(batch, "weights"):
            loss = self.classification_step(y, self(x, arch))
        return self.regularised(loss)

    def regularised(self, loss: torch.Tensor) -> torch.Tensor:
        """``loss`` plus the network's regularisation term of the last forward (AWD-LSTM's AR/TAR),
        where it has one."""
        extra = self.supernet.regularisation_loss()
        return loss if extra is None else loss + extra

    def carried(self, batch: Any, split: str, stream: Optional[str] = None, store: bool = True) -> ContextManager[Any]:
        """Stateful language-model windows (``batch["window"]``): the forwards inside start from the
        hidden state carried over from this stream's previous window (zero at an epoch's first
        window), as AWD-LSTM and DARTS train; a no-op for stateless data and networks without state.
        ``store=False``: the forwards inside leave the carried state as it was (extra forwards on a
        window that a later forward trains on)."""
        window = batch.get("window") if isinstance(batch, dict) else None
        carrying = getattr(self.supernet, "carrying", None)
        if window is None or carrying is None:
            return contextlib.nullcontext()
        if not store:
            return carrying(stream or split, reset=bool(window["first"]), store=False)
        return carrying(stream or split, reset=bool(window["first"]))

    def classification_step(self, y: torch.Tensor, logits: torch.Tensor, prefix: str = "train") -> torch.Tensor:
        """Cross-entropy of ``logits``; logs the step loss and the epoch means of loss and accuracy."""
        loss = F.cross_entropy(logits, y)
        self.log_train(f"{prefix}/loss", loss, len(y), on_step=True)
        self.log_train(f"{prefix}/accuracy", (logits.argmax(-1) == y).float().mean() * 100, len(y))
        return loss

    def log_train(self, name: str, value: Any, batch_size: int = 1, on_step: bool = False) -> None:
        """Add a training value to its resumable epoch mean (logged as ``name``, or ``name_epoch``
        beside ``name_step`` when ``on_step``). A tensor stays on its device: no synchronisation."""
        value = value.detach() if isinstance(value, torch.Tensor) else float(value)
        key = f"{name}_epoch" if on_step else name
        self.epoch_means.start(self.current_epoch)
        self.epoch_means.update(key, value, batch_size)
        if on_step:
            self.log(f"{name}_step", value, on_step=True, on_epoch=False, prog_bar=True, batch_size=batch_size)

    def _reduce_sum(self) -> Optional[Callable[[torch.Tensor], torch.Tensor]]:
        """Sum over DDP processes (None with one process)."""
        if self._trainer is None or self.trainer.world_size <= 1:
            return None
        return lambda t: self.trainer.strategy.reduce(t.to(self.device), reduce_op="sum").cpu()

    def on_train_epoch_end(self) -> None:
        self.epoch_means.start(self.current_epoch)
        for name, mean in self.epoch_means.compute(self._reduce_sum()).items():
            self.log(name, mean, on_step=False, on_epoch=True, prog_bar=name.startswith("train/"), rank_zero_only=True)
        self.epoch_means.reset()
        self.epoch_means.epoch = None
        if not self.automatic_optimization:  # manual optimisation steps the epoch-wise schedule itself
            scheduler = self.lr_schedulers()
            if scheduler is not None:
                (scheduler[0] if isinstance(scheduler, list) else scheduler).step()

    # ------------------------------------------------------------------ optimisation
    def weight_optimizer(self) -> tuple[torch.optim.Optimizer, Any]:
        opt = self.optim
        optimizer = torch.optim.SGD(self.weight_parameters(), lr=opt.lr, momentum=opt.momentum,
                                    weight_decay=opt.weight_decay, nesterov=opt.nesterov and opt.momentum > 0,
                                    foreach=settings.FOREACH)
        if opt.schedule == "cosine":
            epochs = max(1, int(self.trainer.max_epochs or 1)) if self._trainer is not None else 1
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=opt.min_lr)
        else:
            scheduler = torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
        return optimizer, scheduler

    def configure_optimizers(self) -> Any:
        optimizer, scheduler = self.weight_optimizer()
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    def clip_by_norm(self, optimizer: Any, bound: float) -> None:
        """Scale the gradients of ``optimizer``'s parameters so that their global L2 norm is at most
        ``bound`` (0: no clipping), after the backward pass and before the step.

        The one clipping rule of every strategy: ``optimizer.grad_clip`` for the shared weights
        (DARTS: 5, Liu et al. 2019, A.1.1; DARTS' and AWD-LSTM's recurrent training: 0.25),
        ``architecture_optimizer.grad_clip`` for architecture parameters. Automatic optimisation
        reaches it through ``configure_gradient_clipping``, manual optimisation (bi-level strategies)
        calls it itself; a recipe's ``trainer.gradient_clip_val``, which Lightning refuses under
        manual optimisation, is moved here by the CLI before anything is built."""
        if bound > 0:
            self.clip_gradients(optimizer, gradient_clip_val=bound, gradient_clip_algorithm="norm")

    def configure_gradient_clipping(self, optimizer: torch.optim.Optimizer, gradient_clip_val: Any = None,
                                    gradient_clip_algorithm: Optional[str] = None) -> None:
        """Automatic optimisation: the strategy's ``optimizer.grad_clip``. A Trainer built directly
        with ``gradient_clip_val`` (the tabulation, whose tables record it in their protocol) clips
        as Lightning would where the strategy sets no bound."""
        if self.optim.grad_clip > 0:
            self.clip_by_norm(optimizer, self.optim.grad_clip)
        else:
            self.clip_gradients(optimizer, gradient_clip_val=gradient_clip_val,
                                gradient_clip_algorithm=gradient_clip_algorithm)

    # ------------------------------------------------------------------ DDP: per-process streams
    def setup(self, stage: str) -> None:
        """Under DDP every process draws its own dropout masks: the network's random stream is
        derived from (seed, rank) (``SuperNet.seed_rank_stream``); architecture sampling stays
        identical on every rank (``arch_generator``)."""
        if stage == "fit" and self._trainer is not None and self.trainer.world_size > 1:
            self.supernet.seed_rank_stream(self.trainer.global_rank)

    def _gathered_rank_states(self) -> Optional[list[Any]]:
        """Every process's ``SuperNet.rank_state`` (an all-gather: every process dumps the checkpoint)."""
        if self._trainer is None or self.trainer.world_size <= 1 or not torch.distributed.is_initialized():
            return None
        state = self.supernet.rank_state()
        if state is None:
            return None
        gathered: list[Any] = [None] * self.trainer.world_size
        torch.distributed.all_gather_object(gathered, state)
        return gathered

    def on_train_start(self) -> None:
        """Restore this process's own network state (random stream, carried states) from the
        checkpoint, after Lightning loaded rank 0's with the state dict."""
        state, self._rank_state_to_load = self._rank_state_to_load, None
        if state is _OWN_STREAM:
            self.supernet.seed_rank_stream(self.trainer.global_rank)
        elif state is not None:
            self.supernet.load_rank_state(state)

    # ------------------------------------------------------------------ exact resumption
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["architecture_generator"] = self.arch_generator.get_state()
        checkpoint["torch_rng_state"] = torch.get_rng_state()
        # every process dumps the checkpoint, rank 0 writes it: it keeps the sums of all processes
        checkpoint["epoch_means"] = self.epoch_means.summed(self._reduce_sum()).state_dict()
        rank_states = self._gathered_rank_states()
        if rank_states is not None:
            checkpoint["rank_states"] = rank_states

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "architecture_generator" in checkpoint:
            self.arch_generator.set_state(checkpoint["architecture_generator"])
        if "torch_rng_state" in checkpoint:
            torch.set_rng_state(checkpoint["torch_rng_state"])
        self.epoch_means.load_state_dict(checkpoint.get("epoch_means", {}))
        if self._trainer is not None and self.trainer.global_rank != 0:
            self.epoch_means.reset()  # rank 0 carries the restored totals; the epoch-end sum adds the rest
        if self._trainer is not None and self.trainer.world_size > 1:
            rank, states = self.trainer.global_rank, checkpoint.get("rank_states") or []
            # a process the checkpoint has no state for (more processes than saved it) draws its own stream
            self._rank_state_to_load = states[rank] if rank < len(states) else (_OWN_STREAM if rank else None)


#: marks a process that resumes without a saved state of its own
_OWN_STREAM = object()


class FixedArchitecture(SearchStrategy):
    """A strategy whose answer is one architecture known up front (stand-alone training, the
    random-sampling baseline): it trains, derives and offers only ``self.architecture``, and its
    network is the stand-alone network of that architecture (built by the subclass)."""

    answer = "derived"
    builds_supernet = False
    architecture: Hashable

    def sample_architecture(self) -> Hashable:
        return self.architecture

    def derive_architecture(self) -> Hashable:
        return self.architecture

    def candidate_architectures(self, count: int, gen: torch.Generator) -> list[Hashable]:
        return [self.architecture]


def _check_support(strategy: type[SearchStrategy], name: str, space: SearchSpace) -> None:
    """One line naming the space, the strategy and what is missing, if they cannot work together."""
    network = NETWORKS.get(name)
    missing = None
    if "relaxation" in strategy.requires and not space.relaxation:
        missing = "a continuous relaxation (the space states no architecture-weight groups)"
    elif "partial_channels" in strategy.requires and not network.supports_partial_channels:
        missing = f"partial-channel edges ({network.__name__} has none; PC-DARTS is defined for convolutional cells)"
    if missing:
        raise UnsupportedCombinationError(f"{strategy.__name__} cannot search the {name} space: it needs {missing}")


def build(factory: Callable[..., Any], options: Optional[dict[str, Any]], key: str, **fixed: Any) -> Any:
    """Call ``factory`` with recipe options, turning a wrong key into a one-line error naming it."""
    options = dict(options or {})
    parameters = inspect.signature(factory).parameters
    unknown = sorted(set(options) - set(parameters))
    clash = sorted(set(options) & set(fixed))
    if unknown or clash:
        valid = ", ".join(name for name in parameters if name not in fixed and name not in ("self", "space", "arch"))
        what = f"unknown option(s) {', '.join(unknown)}" if unknown else f"option(s) {', '.join(clash)} are set for you"
        raise RecipeError(f"{key}: {what} for {factory.__name__}; valid: {valid}")
    try:
        return factory(**options, **fixed)
    except ValueError as error:
        if isinstance(error, RecipeError) or not _raised_by(error, factory):
            raise  # a programming error deeper down keeps its traceback
        raise RecipeError(f"{key}: {error}") from error


def _raised_by(error: BaseException, factory: Callable[..., Any]) -> bool:
    """True when ``error`` was raised by the argument checks of ``factory``'s own constructor
    (unwrapped: networks' constructors are wrapped to record their options)."""
    code = getattr(inspect.unwrap(getattr(factory, "__init__", factory)), "__code__", None)
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and tb.tb_frame.f_code is code


def _default_option(cls: type, name: str) -> Any:
    """The default the first constructor in ``cls``'s MRO taking ``name`` gives it."""
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            parameter = inspect.signature(klass.__init__).parameters.get(name)
            if parameter is not None and parameter.default is not inspect.Parameter.empty:
                return parameter.default
    raise KeyError(f"{cls.__name__} has no option {name!r} with a default")


def _notice(message: str) -> None:
    """One line on stderr, from the first process only (DDP starts several)."""
    from lightning_fabric.utilities.rank_zero import rank_zero_only

    if getattr(rank_zero_only, "rank", 0) == 0:
        print(f"[lightning_nas] notice: {message}", file=sys.stderr, flush=True)
