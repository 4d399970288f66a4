"""NAS-Bench-201 cell space (Dong & Yang, ICLR 2020): 4 nodes, 6 edges, 5 operations, 5^6 = 15,625 cells.

Node 0 is the cell input and node 3 its output; every node sums one operation applied to each
earlier node. The text form is the benchmark's own, e.g.
``|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|``:
one ``+``-separated group per node 1..3, ``op~j`` being the edge from node j.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Iterator

import torch

from lightning_nas.registry import SPACES
from lightning_nas.spaces.base import ArchitectureError, SearchSpace, operation_subset
from lightning_nas.spaces.decisions import Choice, Picks, WeightGroup, Weights

OPERATIONS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NUM_NODES = 4
#: (target, source) of each edge, in the order of the text form.
EDGES: tuple[tuple[int, int], ...] = tuple((j, i) for j in range(1, NUM_NODES) for i in range(j))

_EXAMPLE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


@dataclass(frozen=True, order=True)
class NB201Architecture:
    """One operation name per edge, in ``EDGES`` order."""

    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.ops) != len(EDGES):
            raise ArchitectureError(f"an NB201 cell has {len(EDGES)} edges, got {len(self.ops)} operations")
        for op in self.ops:
            if op not in OPERATIONS:
                raise ArchitectureError(f"unknown NB201 operation {op!r}; expected one of {', '.join(OPERATIONS)}")

    def __str__(self) -> str:
        groups = []
        for target in range(1, NUM_NODES):
            cells = [f"{self.ops[e]}~{src}" for e, (tgt, src) in enumerate(EDGES) if tgt == target]
            groups.append("|" + "|".join(cells) + "|")
        return "+".join(groups)

    @property
    def index(self) -> int:
        """Position in ``NB201Space.enumerate()`` (the ops read as a base-5 number)."""
        value = 0
        for op in self.ops:
            value = value * len(OPERATIONS) + OPERATIONS.index(op)
        return value

    @classmethod
    def from_index(cls, index: int) -> "NB201Architecture":
        if not 0 <= index < len(OPERATIONS) ** len(EDGES):
            raise ArchitectureError(f"NB201 index {index} out of range [0, {len(OPERATIONS) ** len(EDGES)})")
        ops = []
        for _ in EDGES:
            index, digit = divmod(index, len(OPERATIONS))
            ops.append(OPERATIONS[digit])
        return cls(tuple(reversed(ops)))

    @classmethod
    def from_string(cls, text: str) -> "NB201Architecture":
        def fail(why: str) -> ArchitectureError:
            return ArchitectureError(f"malformed NB201 architecture {text!r}: {why}; expected e.g. {_EXAMPLE}")

        groups = text.strip().split("+")
        if len(groups) != NUM_NODES - 1:
            raise fail(f"{len(groups)} '+'-separated node groups instead of {NUM_NODES - 1}")
        ops: list[str] = []
        for target, group in enumerate(groups, start=1):
            if not (group.startswith("|") and group.endswith("|")) or len(group) < 2:
                raise fail(f"node group {group!r} must be enclosed in '|'")
            cells = group[1:-1].split("|")
            if len(cells) != target:
                raise fail(f"node {target} needs {target} incoming edges, got {len(cells)}")
            for source, cell in enumerate(cells):
                op, sep, src = cell.partition("~")
                if not sep or src != str(source):
                    raise fail(f"edge {cell!r} of node {target} must read 'op~{source}'")
                if op not in OPERATIONS:
                    raise fail(f"unknown operation {op!r} (known: {', '.join(OPERATIONS)})")
                ops.append(op)
        return cls(tuple(ops))


@SPACES.register("nb201")
class NB201Space(SearchSpace[NB201Architecture]):
    """Decisions: one operation per edge (6 layer choices). Relaxation: one softmax row per edge
    (``ops``), plus per-node edge weights (``edges``, PC-DARTS only). Decoding: arg-max per edge
    (Dong & Yang 2020, Sec. 5: NB201 keeps every edge of the cell)."""

    name = "nb201"
    architecture_type = NB201Architecture
    tiny_options = {"operations": ("none", "skip_connect")}
    operations = OPERATIONS
    edges = EDGES

    def __init__(self, operations: tuple[str, ...] | list[str] | None = None) -> None:
        """``operations`` restricts the space to a subset (a reduced space that can be enumerated cheaply)."""
        self.operations = operation_subset(operations, OPERATIONS, "NB201")

    @property
    def size(self) -> int:
        return len(self.operations) ** len(EDGES)

    def sample(self, generator: torch.Generator) -> NB201Architecture:
        choice = torch.randint(len(self.operations), (len(EDGES),), generator=generator)
        return NB201Architecture(tuple(self.operations[int(i)] for i in choice))

    def check(self, arch: NB201Architecture) -> None:
        outside = sorted(set(arch.ops) - set(self.operations))
        if outside:
            raise ArchitectureError(f"{arch} uses {outside}, outside this space's operations {list(self.operations)}")

    def enumerate(self) -> Iterator[NB201Architecture]:
        for ops in itertools.product(self.operations, repeat=len(EDGES)):
            yield NB201Architecture(ops)

    def canonical(self, arch: NB201Architecture) -> NB201Architecture:
        """Replace edges that cannot influence the output by ``none``.

        An edge matters only if its source is reachable from the input and its target reaches the
        output through non-``none`` edges; every other edge contributes zeros or is discarded.
        """
        live = [op != "none" for op in arch.ops]
        reachable = {0}
        for target in range(1, NUM_NODES):
            if any(live[e] and src in reachable for e, (tgt, src) in enumerate(EDGES) if tgt == target):
                reachable.add(target)
        useful = {NUM_NODES - 1}
        for source in range(NUM_NODES - 2, -1, -1):
            if any(live[e] and tgt in useful for e, (tgt, src) in enumerate(EDGES) if src == source):
                useful.add(source)
        ops = tuple(
            op if (live[e] and src in reachable and tgt in useful) else "none"
            for e, (op, (tgt, src)) in enumerate(zip(arch.ops, EDGES, strict=True))
        )
        return NB201Architecture(ops)

    # ------------------------------------------------------------------ the contract
    @property
    def decisions(self) -> tuple[Choice, ...]:
        return tuple(Choice(f"edge {tgt}<-{src}", self.operations) for tgt, src in EDGES)

    def to_decisions(self, arch: NB201Architecture) -> Picks:
        self.check(arch)
        return tuple((self.operations.index(op),) for op in arch.ops)

    def from_decisions(self, picks) -> NB201Architecture:
        picks = self.check_picks(picks)
        return NB201Architecture(tuple(self.operations[p[0]] for p in picks))

    @property
    def relaxation(self) -> tuple[WeightGroup, ...]:
        targets = [tgt for tgt, _ in EDGES]
        segments = tuple((targets.index(t), len(targets) - targets[::-1].index(t)) for t in sorted(set(targets)))
        return (WeightGroup("ops", (len(EDGES), len(self.operations))),
                WeightGroup("edges", (len(EDGES),), segments, edge_normalisation=True))

    def decode(self, weights: Weights) -> NB201Architecture:
        """Arg-max operation per edge of the ``ops`` weights (the edge weights cannot drop an NB201 edge)."""
        ops = weights["ops"]
        expected = (len(EDGES), len(self.operations))
        if tuple(ops.shape) != expected:
            raise ArchitectureError(f"NB201 architecture weights 'ops' must have shape {expected}, got {tuple(ops.shape)}")
        return NB201Architecture(tuple(self.operations[int(i)] for i in ops.argmax(dim=-1)))

    def one_hot(self, arch: NB201Architecture) -> dict[str, torch.Tensor]:
        ops = torch.zeros(len(EDGES), len(self.operations))
        for e, (p,) in enumerate(self.to_decisions(arch)):
            ops[e, p] = 1.0
        return {"ops": ops, "edges": torch.ones(len(EDGES))}
