"""What every search space offers: architectures, their decisions and their relaxation; nothing that trains.

A space is a set of discrete architectures (immutable, hashable, with a text form that
round-trips) plus the contract strategies drive (``lightning_nas.spaces.decisions``):

- ``decisions``: the labelled choices an architecture is made of, with ``to_decisions`` /
  ``from_decisions`` converting both ways (single-path, FairNAS and ENAS strategies use these);
- ``relaxation``: the architecture-weight groups of gradient-based strategies, ``decode`` (the
  space's own rule from weights back to an architecture) and ``one_hot`` (weights that select one
  architecture exactly);
- ``key``: the benchmark key of an architecture (its text form; NAS-Bench-101 uses the graph hash).

Networks are built from spaces elsewhere (``lightning_nas.nn``), so a space can be enumerated,
sampled and decoded without importing a single torch module. A registered space is checked when
its module is imported (``SearchSpace.check_contract``): a missing member fails there, naming the
class and the member, not at the first parse or decode.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Generic, Hashable, Iterator, Optional, Sequence, TypeVar

import torch

from lightning_nas.errors import ArchitectureError  # noqa: F401  (re-exported)
from lightning_nas.registry import ContractError
from lightning_nas.spaces.decisions import Choice, Picks, WeightGroup, Weights

Arch = TypeVar("Arch", bound=Hashable)


def operation_subset(requested: Optional[Sequence[str]], available: Sequence[str], space: str) -> tuple[str, ...]:
    """``requested`` operations (default: all) in the order of ``available``; a one-line
    ``space_options.operations`` error unless they are distinct, known and not empty."""
    ops = tuple(requested) if requested is not None else tuple(available)
    if not ops or len(set(ops)) != len(ops) or any(op not in available for op in ops):
        raise ArchitectureError(f"space_options.operations: the {space} operation subset {list(ops)} must name distinct "
                                f"operations of {list(available)}")
    return tuple(op for op in available if op in ops)


class SearchSpace(ABC, Generic[Arch]):
    """A (possibly huge) set of architectures of one type, stated as decisions."""

    name: str = "space"
    #: options of a small instance (tests enumerate it: ideally at most a few hundred architectures)
    tiny_options: dict = {}

    # ------------------------------------------------------------------ architectures
    @property
    @abstractmethod
    def size(self) -> int:
        """Number of architectures (counting isomorphic ones separately)."""

    #: the architecture class; its ``from_string`` reads the text form
    architecture_type: type

    @classmethod
    def check_contract(cls) -> None:
        """ContractError naming the class and what it lacks (run when the space is registered)."""
        abstract = sorted(getattr(cls, "__abstractmethods__", ()))
        if abstract:
            raise ContractError(f"space {cls.__name__}: it must define {', '.join(abstract)}")
        kind = getattr(cls, "architecture_type", None)
        if not isinstance(kind, type) or not callable(getattr(kind, "from_string", None)):
            raise ContractError(f"space {cls.__name__}: it must set architecture_type to the architecture class "
                                "(whose from_string reads the text form parse() accepts)")
        if cls.relaxation is not SearchSpace.relaxation:
            missing = [name for name in ("decode", "one_hot") if getattr(cls, name) is getattr(SearchSpace, name)]
            if missing:
                raise ContractError(f"space {cls.__name__}: it states a relaxation, so it must define "
                                    f"{' and '.join(missing)}")

    def parse(self, text: str) -> Arch:
        """The architecture whose ``str`` is ``text``, checked to lie in this space; ArchitectureError otherwise."""
        arch = self.architecture_type.from_string(text)
        self.check(arch)
        return arch

    def check(self, arch: Arch) -> None:
        """ArchitectureError (one line saying why) unless ``arch`` lies in this space."""

    def sample(self, generator: torch.Generator) -> Arch:
        """One architecture drawn uniformly; all randomness comes from ``generator``.

        Default: uniform picks for every choice, redrawn while the combination is invalid
        (rejection sampling is uniform over the valid architectures because ``from_decisions``
        is one-to-one).
        """
        while True:
            picks = tuple(tuple(sorted(int(i) for i in torch.randperm(len(c), generator=generator)[:c.pick]))
                          for c in self.decisions)
            try:
                return self.from_decisions(picks)
            except ArchitectureError:
                continue

    def enumerate(self) -> Iterator[Arch]:
        raise NotImplementedError(f"{self.name} cannot be enumerated ({self.size} architectures)")

    def canonical(self, arch: Arch) -> Arch:
        """A representative shared by all architectures that compute the same function."""
        return arch

    def key(self, arch: Arch) -> str:
        """The key a benchmark stores ``arch`` under (the text form unless the space says otherwise)."""
        return str(arch)

    def subspace(self, arch: Arch) -> Optional[Hashable]:
        """The sub-space of ``arch`` where a space splits into sub-spaces in which every operation has
        one width (Yu et al., "How to Train Your Super-Net", Sec. 4.5; NB101: the output's in-degree);
        None where it does not (the per-sub-space ranking, ``ranking.per_subspace``, is refused)."""
        return None

    def sample_many(self, count: int, generator: torch.Generator, unique: bool = True) -> list[Arch]:
        """``count`` architectures in sampling order; without repeats when ``unique``."""
        if unique and count > self.size:
            raise ArchitectureError(f"cannot draw {count} distinct architectures from {self.name}, which has {self.size}")
        archs: list[Arch] = []
        seen: set[Arch] = set()
        while len(archs) < count:
            arch = self.sample(generator)
            if unique and arch in seen:
                continue
            seen.add(arch)
            archs.append(arch)
        return archs

    # ------------------------------------------------------------------ decisions
    @property
    @abstractmethod
    def decisions(self) -> tuple[Choice, ...]:
        """The discrete choices every architecture of this space makes, in a fixed order."""

    @abstractmethod
    def to_decisions(self, arch: Arch) -> Picks:
        """``arch`` as one sorted tuple of option indices per choice."""

    @abstractmethod
    def from_decisions(self, picks: Sequence[Sequence[int]]) -> Arch:
        """The architecture making ``picks``; ArchitectureError if the combination is invalid."""

    def check_picks(self, picks: Sequence[Sequence[int]]) -> Picks:
        """``picks`` validated against ``decisions`` (one line naming the bad choice otherwise)."""
        choices = self.decisions
        if len(picks) != len(choices):
            raise ArchitectureError(f"{self.name} makes {len(choices)} decisions, got {len(picks)}")
        return tuple(choice.check(p) for choice, p in zip(choices, picks, strict=True))

    # ------------------------------------------------------------------ relaxation
    @property
    def relaxation(self) -> tuple[WeightGroup, ...]:
        """Architecture-weight groups of gradient-based strategies; () where the space has none."""
        return ()

    def decode(self, weights: Weights) -> Arch:
        """The architecture that normalised weights point to, by this space's own rule."""
        raise NotImplementedError(f"{self.name} has no relaxed parameterisation")

    def one_hot(self, arch: Arch) -> dict[str, torch.Tensor]:
        """Weights that make the relaxed network compute exactly ``arch`` (1 on its options, 0 elsewhere)."""
        raise NotImplementedError(f"{self.name} has no relaxed parameterisation")
