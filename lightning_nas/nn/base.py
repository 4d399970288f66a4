"""The one super-net protocol every space's network implements, and the edge policies strategies pick.

A super-net is built from its space (``Network(space=..., **options)``) and offers three things:

- ``net(x, arch)``: one path, exactly the stand-alone network of ``arch`` (single-path strategies,
  scoring with shared weights);
- ``net.forward_weighted(x, weights, active=None)``: the continuous relaxation. ``weights`` maps
  each of the space's ``WeightGroup`` names to *normalised* weights; every decision edge returns
  ``sum_{o in active} weights[row, o] * op_o(input)`` (DARTS Eq. 2 over all options; GDAS passes
  the sampled option as the only active one with straight-through weights). Vector groups (edge
  weights, PC-DARTS Eq. 4) scale whole edges. A one-hot weight dict of an architecture computes
  that architecture's function (tested for every space);
- ``net.standalone(arch)``: the stand-alone network of ``arch`` carrying this super-net's weights
  for that path; written once here.

Partial channels (PC-DARTS, Xu et al. 2020, Eq. 2) are a build option of networks that support
them (``supports_partial_channels``): their mixed edges then see 1/K of the channels
(``lightning_nas.nn.partial``: a node at a time, or ``partial_mix`` for one edge).
"""
from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Hashable, Mapping, Optional, Sequence

import torch
from torch import nn

from lightning_nas.registry import ContractError


@dataclass(frozen=True)
class ActiveSet:
    """Which options of each matrix group run: ``indices[group]`` is a (rows, k) integer tensor.

    ``passthrough``: every edge also adds the weights of its inactive options (zero in value for
    straight-through one-hot weights, but a gradient path to them), as the GDAS code of Dong &
    Yang does; False drops those terms (only the sampled operation's weight gets a gradient)."""

    indices: Mapping[str, torch.Tensor]
    passthrough: bool = False


Active = Optional[ActiveSet]


def mix(weights: torch.Tensor, options: Sequence[int], run: Callable[[int], Optional[torch.Tensor]],
        passthrough: bool = False) -> Optional[torch.Tensor]:
    """``sum_o weights[o] * run(o)`` over ``options``; ``run`` returns None for ``none`` (adds nothing).

    The one mixed-operation rule of every space: the softmax mixture of DARTS (Eq. 2) when
    ``options`` are all of them, GDAS's single sampled operation when it is the active one.
    ``passthrough`` adds the weights of the options not in ``options`` as one scalar (GDAS'
    reference straight-through estimator: zero in value, a gradient path to every weight; the
    network passes ``passes_through(active, group)``). Returns None when no operation contributes,
    and a 0-dim tensor when only the passthrough constant does (cells turn both into a node value
    with ``node_value``). Several outputs are combined by one stack and one contraction instead
    of a multiply and an add per option: on a GPU these small networks are bound by kernel
    launches, not arithmetic. A one-hot row still gives the chosen output exactly.
    """
    outputs, chosen = [], []
    for o in options:
        out = run(int(o))
        if out is not None:
            outputs.append(out)
            chosen.append(int(o))
    rest: Optional[torch.Tensor] = None
    if passthrough:
        active = {int(o) for o in options}
        inactive = [o for o in range(weights.shape[0]) if o not in active]
        if inactive:
            rest = weights[inactive].sum()
    if not outputs:
        return rest  # a 0-dim constant (GDAS reference with ``none`` sampled) or None
    if len(outputs) == 1:
        total = weights[chosen[0]] * outputs[0]
    else:
        first, last = chosen[0], chosen[-1]
        row = weights[first:last + 1] if chosen == list(range(first, last + 1)) else weights[chosen]
        stacked = torch.stack(outputs)
        total = torch.tensordot(row.to(stacked.dtype), stacked, dims=1)  # autocast: outputs may be bf16
    return total if rest is None else total + rest


def node_value(total: Optional[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    """A node's value from the sum of its incoming edges: zeros when none contributed, broadcast
    when only 0-dim constants did (``mix`` in GDAS' reference mode with ``none`` sampled)."""
    if total is None:
        return torch.zeros_like(like)
    return total if total.dim() else torch.zeros_like(like) + total


def active_options(active: Active, group: str, row: int, count: int) -> Sequence[int]:
    """The options of ``group``'s row ``row`` that run: all of them unless ``active`` restricts it."""
    if active is None or group not in active.indices:
        return range(count)
    return [int(i) for i in active.indices[group][row].reshape(-1)]


def passes_through(active: Active, group: str) -> bool:
    """``mix``'s ``passthrough`` for the rows of ``group``: True where ``active`` restricts them and
    asks for the inactive weights as scalars (GDAS' reference straight-through estimator)."""
    return active is not None and active.passthrough and group in active.indices


def check_partial_channels(channels: int, partial_channels: int, arch: Optional[Hashable]) -> None:
    """The PC-DARTS option of a network: K >= 1 dividing the channel count, super-nets only."""
    if partial_channels < 1 or channels % partial_channels:
        raise ValueError(f"partial_channels={partial_channels} must be >= 1 and divide C={channels}")
    if partial_channels > 1 and arch is not None:
        raise ValueError("partial_channels applies to the PC-DARTS super-net only, not to a stand-alone network")


class SuperNet(nn.Module):
    """Base of every space's network. Subclasses take ``space`` (the space object), ``arch``
    (None: the super-net; else the stand-alone net of that architecture), ``num_classes``,
    ``in_channels`` and their own options, and implement ``forward`` and ``forward_weighted``.

    ``self.config`` holds every constructor argument except ``space`` and ``arch``, recorded from
    the constructor's signature before its body runs (defaults filled in), so that ``standalone``
    rebuilds a network with exactly the same options; a constructor may complete it with values it
    resolves itself (the RNN's drawn dropout seed)."""

    #: networks whose mixed edges can run on 1/K of the channels (PC-DARTS)
    supports_partial_channels: ClassVar[bool] = False
    #: what ``forward`` takes: ``image`` (B, C, H, W) floats or ``tokens`` (B, T) ids
    input_kind: ClassVar[str] = "image"
    #: options of a tiny instance that runs a step on 8x8 inputs in milliseconds (tests, smoke runs)
    tiny_options: ClassVar[dict[str, Any]] = {}
    #: values of the constructor's ``output`` option: how a cell combines its nodes into its output.
    #: ``loose_ends`` (the nodes no other node reads) is what ENAS' ``combine_loose_ends`` asks for.
    output_modes: ClassVar[tuple[str, ...]] = ()
    #: GDAS' straight-through estimator on this space when a recipe names none, as the authors' port
    #: for the space computes it: ``reference`` - each edge also adds its inactive weights as scalars
    #: (xautodl's NAS-Bench-201 ``NAS201SearchCell.forward_gdas``, Dong & Yang 2020), the default;
    #: ``sampled`` - only the sampled operation times its weight (a network overrides it where its
    #: authors' GDAS does so, e.g. the DARTS CNN space)
    straight_through: ClassVar[str] = "reference"

    space: Any
    arch: Optional[Hashable]
    config: dict[str, Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            cls.__init__ = _recording_config(cls.__dict__["__init__"])  # type: ignore[method-assign]

    @classmethod
    def check_contract(cls) -> None:
        """ContractError naming the class and what it lacks (run when the network is registered)."""
        parameters = inspect.signature(cls.__init__).parameters
        needed = (["space", "arch", "num_classes", "in_channels"] + ["partial_channels"] * cls.supports_partial_channels
                  + ["output"] * bool(cls.output_modes))
        missing = [name for name in needed if name not in parameters]
        if missing:
            raise ContractError(f"network {cls.__name__}: its constructor must take {', '.join(missing)}")
        unknown = sorted(set(cls.tiny_options) - set(parameters))
        if unknown:
            raise ContractError(f"network {cls.__name__}: tiny_options name {', '.join(unknown)}, which its constructor "
                                "does not take")
        if cls.forward is SuperNet.forward:
            raise ContractError(f"network {cls.__name__}: it must define forward(x, arch) (one path of the super-net)")
        if cls.straight_through not in ("reference", "sampled"):
            raise ContractError(f"network {cls.__name__}: straight_through must be 'reference' or 'sampled', not "
                                f"{cls.straight_through!r}")
        if cls.input_kind not in ("image", "tokens"):
            raise ContractError(f"network {cls.__name__}: input_kind must be 'image' or 'tokens', not {cls.input_kind!r}")

    def forward(self, x: torch.Tensor, arch: Optional[Hashable] = None) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def forward_weighted(self, x: torch.Tensor, weights: Mapping[str, torch.Tensor],
                         active: Active = None) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError(f"{type(self).__name__} has no relaxed forward")

    #: weight of the auxiliary head's loss in stand-alone training (0: the network has none)
    auxiliary_weight: float = 0.0

    def forward_with_auxiliary(self, x: torch.Tensor, arch: Optional[Hashable] = None
                               ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """(logits, auxiliary logits or None): evaluation networks with an auxiliary head
        (DARTS CNN) return the head's logits in training mode."""
        return self(x, arch), None

    def regularisation_loss(self) -> Optional[torch.Tensor]:
        """A term the training loss adds after a weight forward (AWD-LSTM's AR/TAR); None: nothing
        to add (no extra operation in the training step)."""
        return None

    def update_drop_path(self, epoch: int, max_epochs: int) -> float:
        """Set the drop-path probability of ``epoch`` (networks with drop-path); returns it."""
        return 0.0

    def noise_state(self) -> Any:
        """The position of the network's own random stream (its dropout masks), None where it has
        none. ``set_noise_state(state)`` makes the next forward draw the masks a forward drew from
        ``state``: the forwards of one DARTS hypergradient on one batch see one set of masks."""
        return None

    def set_noise_state(self, state: Any) -> None:
        """Move the network's random stream back to ``state`` (from ``noise_state``)."""

    def seed_rank_stream(self, rank: int) -> None:
        """Give DDP process ``rank`` its own random stream, derived from the network's seed and the
        rank (``seeding.rank_seed``; rank 0 keeps the network's). Called before training starts."""

    def rank_state(self) -> Any:
        """What differs between the DDP processes of one run (random stream, carried hidden states),
        saved per rank in checkpoints; None where nothing does."""
        return None

    def load_rank_state(self, state: Any) -> None:
        """Restore this process's ``rank_state`` from a checkpoint."""

    def path_architecture(self, arch: Optional[Hashable]) -> Hashable:
        """``arch``, or this stand-alone network's own; a super-net needs one."""
        arch = arch if arch is not None else self.arch
        if arch is None:
            raise ValueError("a super-net forward needs an architecture: call net(x, arch)")
        return arch

    def path_as_relaxation(self, x: torch.Tensor, arch: Hashable,
                           undecided: Optional[Mapping[str, torch.Tensor]] = None) -> torch.Tensor:
        """``arch`` computed by the relaxation: the space's one-hot weights of ``arch`` for every
        group the architecture decides, and for the groups it does not decide (PC-DARTS' edge
        normalisation) ``undecided``'s weights, or none (each edge at weight 1).

        How a network whose edges exist only in relaxed form (partial channels, PC-DARTS) runs one
        path: one-hot weights multiply by exactly 1 and 0, so the result is the path's function."""
        one_hot = self.space.one_hot(arch)
        weights = {g.name: one_hot[g.name].to(x.device) for g in self.space.relaxation if not g.edge_normalisation}
        weights.update(undecided or {})
        return self.forward_weighted(x, weights)

    def standalone(self, arch: Hashable) -> "SuperNet":
        """The stand-alone network of ``arch`` carrying this super-net's weights for that path.

        The stand-alone state-dict keys are a subset of the super-net's (one cell/operation
        implementation serves both), so the path *is* the stand-alone net with copied weights."""
        if self.config.get("partial_channels", 1) > 1:
            raise ValueError("a partial-channel (PC-DARTS) super-net has no stand-alone paths: its operations see C/K channels")
        options = {k: v for k, v in self.config.items() if k != "partial_channels"}
        net = type(self)(space=self.space, arch=arch, **options)
        shared = self.state_dict()
        missing = [k for k in net.state_dict() if k not in shared]
        if missing:
            raise ValueError(f"stand-alone keys absent from the super-net: {missing[:5]}")
        net.load_state_dict({key: shared[key] for key in net.state_dict()})
        return net


def _recording_config(init: Callable[..., None]) -> Callable[..., None]:
    """``init`` recording its bound arguments (defaults applied, ``space`` and ``arch`` left out) as
    ``self.config`` before it runs. Only the constructor of the instance's own class records, so a
    subclass that adds options records all of them."""
    signature = inspect.signature(init)

    @functools.wraps(init)
    def recording(self: SuperNet, *args: Any, **kwargs: Any) -> None:
        if type(self).__init__ is recording:
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            config: dict[str, Any] = {}
            for name, value in list(bound.arguments.items())[1:]:
                if signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
                    config.update(value)
                elif signature.parameters[name].kind is not inspect.Parameter.VAR_POSITIONAL:
                    config[name] = value
            for name in ("space", "arch"):
                config.pop(name, None)
            object.__setattr__(self, "config", config)  # before nn.Module.__init__: a plain attribute
        init(self, *args, **kwargs)

    return recording


def stateless_key(module: nn.Module) -> Optional[tuple]:
    """A key under which ``module``'s output on one input can be reused, or None: a module without
    parameters or buffers (a pooling, an identity) computes a function of its input and its
    configuration alone, so edges that apply equal such modules to one node share one output."""
    if next(module.parameters(), None) is not None or next(module.buffers(), None) is not None:
        return None
    config = tuple(sorted((k, repr(v)) for k, v in vars(module).items() if not k.startswith("_") and k != "training"))
    return type(module), config
