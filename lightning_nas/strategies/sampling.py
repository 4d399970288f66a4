"""How a single-path strategy draws the architecture it trains: the "sampling" factor of
Yu et al., "How to Train Your Super-Net" (ICLR 2021 submission, Table 1, Sec. 3.1 and App. C.2).

``per_decision`` (Random-NAS / SPOS, Li & Talwalkar 2019; Guo et al. 2020): every decision of the
space is drawn uniformly and independently (``space.sample``), an invalid combination redrawn. This
is uniform over the space's valid *decision combinations*. Where several combinations are the same
architecture (NB101 and NAS-Bench-1Shot1: isomorphic or pruned-equal cells share one graph hash,
``space.key``), architectures with many spellings are drawn more often.

``architectures`` (Random-A): every valid architecture equally likely, an architecture being one
value of ``space.key`` (the benchmark key: what the benchmark trains and scores as one model).
- A space that keeps the default ``key`` (``str(arch)``) has one architecture per valid decision
  combination (``from_decisions`` is one-to-one), so ``space.sample`` - uniform picks with invalid
  combinations redrawn, i.e. rejection sampling - is already uniform over architectures and is used
  as it is (NB201, DARTS CNN, DARTS RNN).
- A space with its own ``key`` is enumerated once (``enumerate()``, at most ``max_enumerate``
  decided architectures) and grouped by key; each draw picks a key uniformly, then one of its
  decided architectures uniformly (so no spelling of a cell gets the shared weights' training
  alone). A space whose architectures cannot be listed is refused in one line.

Both draw only from the strategy's seeded architecture generator (``lightning_nas.seeding``), which
checkpoints save, so runs and resumed runs are bit-identical.
"""
from __future__ import annotations

from typing import Hashable, Literal

import torch

from lightning_nas.errors import RecipeError, UnsupportedCombinationError
from lightning_nas.spaces import SearchSpace

Sampling = Literal["per_decision", "architectures"]
SAMPLINGS: tuple[str, ...] = ("per_decision", "architectures")


def keys_are_decisions(space: SearchSpace) -> bool:
    """True where each valid decision combination is its own architecture (the default ``key``)."""
    return type(space).key is SearchSpace.key


class ArchitectureSampler:
    """Draws architectures of ``space`` under one sampling rule, from a generator the caller owns."""

    def __init__(self, space: SearchSpace, sampling: str = "per_decision", max_enumerate: int = 100_000,
                 owner: str = "model.sampling") -> None:
        if sampling not in SAMPLINGS:
            raise RecipeError(f"{owner} must be one of {', '.join(SAMPLINGS)}, got {sampling!r}")
        self.space = space
        self.sampling = sampling
        #: the decided architectures of each key, in enumeration order (Random-A over keyed spaces only)
        self.groups: list[list[Hashable]] = []
        if sampling == "architectures" and not keys_are_decisions(space):
            self.groups = _groups_by_key(space, max_enumerate, owner)

    def __call__(self, gen: torch.Generator) -> Hashable:
        if not self.groups:
            return self.space.sample(gen)
        group = self.groups[int(torch.randint(len(self.groups), (1,), generator=gen))]
        return group[int(torch.randint(len(group), (1,), generator=gen))] if len(group) > 1 else group[0]


def _groups_by_key(space: SearchSpace, max_enumerate: int, owner: str) -> list[list[Hashable]]:
    """The space's decided architectures grouped by benchmark key (first-seen order: deterministic)."""
    why = f"{owner}=architectures needs the {space.name} space's architectures listed to draw each of its keys " \
          "equally often"
    if space.size > max_enumerate:
        raise UnsupportedCombinationError(f"{why}, but it has {space.size} decided architectures (more than "
                                          f"model.max_enumerate={max_enumerate}); use per_decision or a smaller space")
    try:
        archs = list(space.enumerate())
    except NotImplementedError as error:
        raise UnsupportedCombinationError(f"{why}, but it cannot be enumerated ({error})") from None
    groups: dict[str, list[Hashable]] = {}
    for arch in archs:
        groups.setdefault(space.key(arch), []).append(arch)
    return list(groups.values())
