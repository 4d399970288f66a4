"""What every search space offers: architectures, and nothing that trains.

A space is a set of discrete architectures with a text form that round-trips. Networks are built
from architectures elsewhere (``lightning_nas.nn``), so a space can be enumerated, sampled and
decoded without importing a single torch module.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Generic, Hashable, Iterator, TypeVar

import torch

Arch = TypeVar("Arch", bound=Hashable)


class ArchitectureError(ValueError):
    """A malformed or out-of-space architecture; the message says what a valid one looks like."""


class SearchSpace(ABC, Generic[Arch]):
    """A (possibly huge) set of architectures of one type."""

    name: str = "space"

    @property
    @abstractmethod
    def size(self) -> int:
        """Number of architectures (counting isomorphic ones separately)."""

    @abstractmethod
    def sample(self, generator: torch.Generator) -> Arch:
        """One architecture drawn uniformly; all randomness comes from ``generator``."""

    @abstractmethod
    def parse(self, text: str) -> Arch:
        """The architecture whose ``str`` is ``text``; raises ArchitectureError otherwise."""

    def enumerate(self) -> Iterator[Arch]:
        raise NotImplementedError(f"{self.name} cannot be enumerated ({self.size} architectures)")

    def canonical(self, arch: Arch) -> Arch:
        """A representative shared by all architectures that compute the same function."""
        return arch

    def decode(self, arch_parameters: torch.Tensor) -> Arch:
        """The discrete architecture a relaxed (DARTS-style) parameterisation points to."""
        raise NotImplementedError(f"{self.name} has no relaxed parameterisation")

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
