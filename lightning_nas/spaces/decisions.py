"""The vocabulary of the space/strategy contract: discrete decisions and their relaxation.

A search space states *what can be decided* as a tuple of ``Choice``s; an architecture is one
pick per choice (``SearchSpace.to_decisions`` / ``from_decisions``). Strategies drive choices and
never look at a concrete space: SPOS draws picks, FairNAS permutes each choice's options, ENAS's
controller emits one token per pick. The vocabulary follows the usual "layer choice" (one
operation among n) and "input choice" (k inputs among n predecessors) of one-shot NAS libraries.

Gradient-based strategies need the space's *relaxation* instead: named groups of architecture
weights (``WeightGroup``), each normalised by a softmax over its last axis (per row for an
operation matrix; per segment for a vector of edge weights), and the space's own rule that decodes
normalised weights back into an architecture (``SearchSpace.decode``).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F

from lightning_nas.errors import ArchitectureError

#: One architecture as picks: for every choice, the sorted indices of the options it takes.
Picks = tuple[tuple[int, ...], ...]
#: Normalised (or raw) architecture weights by group name.
Weights = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class Choice:
    """One discrete decision: ``pick`` distinct options among ``options``.

    ``kind`` says what is chosen: ``operation`` (a layer choice: an operation per edge, an
    activation per node) or ``input`` (which predecessors feed a node: DARTS CNN nodes keep 2,
    NAS-Bench-1Shot1 choice blocks a fixed number of parents, NAS-Bench-101 edges are present or
    not). ``label`` names the decision in messages and logs.
    """

    label: str
    options: tuple[str, ...]
    pick: int = 1
    kind: str = "operation"

    def __post_init__(self) -> None:
        if not self.options:
            raise ValueError(f"choice {self.label!r} has no options")
        if not 1 <= self.pick <= len(self.options):
            raise ValueError(f"choice {self.label!r} picks {self.pick} of {len(self.options)} options")
        if self.kind not in ("operation", "input"):
            raise ValueError(f"choice {self.label!r}: kind must be 'operation' or 'input', got {self.kind!r}")

    def __len__(self) -> int:
        return len(self.options)

    def check(self, picked: Sequence[int]) -> tuple[int, ...]:
        """``picked`` as a sorted tuple, or an ArchitectureError naming this choice."""
        picked = tuple(sorted(int(i) for i in picked))
        if len(picked) != self.pick or len(set(picked)) != self.pick or not all(0 <= i < len(self) for i in picked):
            raise ArchitectureError(f"choice {self.label!r} takes {self.pick} distinct option(s) of "
                                    f"{list(self.options)}, got indices {list(picked)}")
        return picked


@dataclass(frozen=True)
class WeightGroup:
    """A named block of architecture weights and how it is normalised.

    ``shape == (rows, options)``: a softmax over each row (DARTS Eq. 2: one mixed operation per
    edge). ``shape == (n,)`` with ``segments``: a softmax within each ``[start, end)`` segment
    (edge weights over the inputs of a node, PC-DARTS Eq. 4, NAS-Bench-1Shot1's beta/gamma).
    ``edge_normalisation`` marks vector groups that only a strategy using edge normalisation
    creates (PC-DARTS' beta on spaces whose discrete rule does not need them).
    """

    name: str
    shape: tuple[int, ...]
    segments: tuple[tuple[int, int], ...] = field(default=())
    edge_normalisation: bool = False

    def __post_init__(self) -> None:
        if len(self.shape) == 1:
            covered = sorted(self.segments)
            if not covered or covered[0][0] != 0 or covered[-1][1] != self.shape[0] or any(
                    a[1] != b[0] for a, b in itertools.pairwise(covered)):
                raise ValueError(f"weight group {self.name!r}: segments {self.segments} must tile [0, {self.shape[0]})")
        elif len(self.shape) != 2:
            raise ValueError(f"weight group {self.name!r} must be a matrix or a segmented vector, got shape {self.shape}")

    def normalise(self, raw: torch.Tensor) -> torch.Tensor:
        """Softmax per row (matrix) or per segment (vector)."""
        if tuple(raw.shape) != self.shape:
            raise ArchitectureError(f"architecture weights {self.name!r} must have shape {self.shape}, got {tuple(raw.shape)}")
        if len(self.shape) == 2:
            return F.softmax(raw, dim=-1)
        # one split (one gradient concatenation) rather than a slice per segment (one zero-filled
        # gradient and one addition each); the segments tile the vector in order (``__post_init__``)
        pieces = raw.split([b - a for a, b in sorted(self.segments)])
        return torch.cat([F.softmax(piece, dim=0) for piece in pieces])
