"""The DARTS/ENAS recurrent cell space (Liu et al. 2019, Sec. 2.1; Pham et al. 2018, App. A).

A cell has ``num_nodes`` intermediate nodes 1..n after the initial state s0 (node 0, computed
from x_t and h_{t-1}). Node i picks one predecessor j in 0..i-1 and one activation in
(tanh, relu, sigmoid, identity); the cell's output is the mean of the intermediate nodes. Hence
|S| = n! * |O|^n (Yu et al. 2020, Sec. 3.2): 32 architectures for n = 2 and 4 activations, the
reduced space whose 32 architectures can all be trained stand-alone; n = 8 is DARTS' space.

Text form: one ``activation~predecessor`` per node, ``|``-separated, nodes in order, e.g.
``tanh~0|relu~1`` (node 1 applies tanh to s0, node 2 applies relu to node 1).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

import torch

from lightning_nas.registry import SPACES
from lightning_nas.spaces.base import ArchitectureError, SearchSpace
from lightning_nas.spaces.decisions import Choice, Picks, WeightGroup, Weights

ACTIVATIONS: tuple[str, ...] = ("tanh", "relu", "sigmoid", "identity")
#: DARTS' PRIMITIVES: the activations plus ``none`` (the zero operation), in DARTS' order. ``none``
#: exists only in the relaxation (DARTS search); it is never part of an architecture.
OPERATIONS: tuple[str, ...] = ("none",) + ACTIVATIONS
#: DARTS' recurrent search space has 8 intermediate nodes (Liu et al. 2019, Sec. 3.1.2).
DEFAULT_NUM_NODES = 8


def rnn_edges(num_nodes: int) -> tuple[tuple[int, int], ...]:
    """(node, predecessor) of every possible edge, node-major: (1,0), (2,0), (2,1), (3,0), ...

    The row order of the ``ops`` relaxation weights (``decode``, ``forward_weighted``).
    """
    return tuple((i, j) for i in range(1, num_nodes + 1) for j in range(i))


@dataclass(frozen=True, order=True)
class DartsRNNArchitecture:
    """``nodes[i-1] = (activation, predecessor)`` of intermediate node i (1-based), predecessor < i."""

    nodes: tuple[tuple[str, int], ...]

    def __post_init__(self) -> None:
        if not self.nodes:
            raise ArchitectureError("a DARTS RNN cell needs at least one intermediate node")
        for i, node in enumerate(self.nodes, start=1):
            if not (isinstance(node, tuple) and len(node) == 2):
                raise ArchitectureError(f"node {i} must be an (activation, predecessor) pair, got {node!r}")
            activation, predecessor = node
            if activation not in ACTIVATIONS:
                raise ArchitectureError(f"unknown activation {activation!r} at node {i}; "
                                        f"expected one of {', '.join(ACTIVATIONS)}")
            if isinstance(predecessor, bool) or not isinstance(predecessor, int) or not 0 <= predecessor < i:
                raise ArchitectureError(f"node {i} must take a predecessor in 0..{i - 1}, got {predecessor!r}")

    @property
    def num_nodes(self) -> int:
        return len(self.nodes)

    def __str__(self) -> str:
        return "|".join(f"{activation}~{predecessor}" for activation, predecessor in self.nodes)

    @classmethod
    def from_string(cls, text: str) -> "DartsRNNArchitecture":
        def fail(why: str) -> ArchitectureError:
            return ArchitectureError(f"malformed DARTS RNN architecture {text!r}: {why}; "
                                     "expected 'activation~predecessor' per node joined by '|', e.g. tanh~0|relu~1")

        if not isinstance(text, str) or not text.strip():
            raise fail("empty")
        nodes = []
        for i, part in enumerate(text.strip().split("|"), start=1):
            activation, sep, predecessor = part.partition("~")
            if not sep:
                raise fail(f"node {i} {part!r} lacks '~'")
            if activation not in ACTIVATIONS:
                raise fail(f"unknown activation {activation!r} at node {i} (known: {', '.join(ACTIVATIONS)})")
            if not predecessor.isdigit() or str(int(predecessor)) != predecessor:
                raise fail(f"node {i}'s predecessor {predecessor!r} is not a node number")
            if int(predecessor) >= i:
                raise fail(f"node {i} can only follow nodes 0..{i - 1}, not {predecessor}")
            nodes.append((activation, int(predecessor)))
        return cls(tuple(nodes))


@SPACES.register("darts_rnn")
class DartsRNNSpace(SearchSpace[DartsRNNArchitecture]):
    """Decisions: per node i, its input (one of nodes 0..i-1) and its activation. Relaxation
    (DARTS, Liu et al. 2019, App. A.1.2): one softmax row over the activations for every
    (node, predecessor) edge (``ops``), the node summing all its incoming edges; decoding keeps,
    per node, the strongest edge and its strongest activation.

    Args:
        num_nodes: intermediate nodes n (8: DARTS; 2: the 32-architecture space of Yu et al.;
            11 holds the published ENAS cell).
        operations: a subset of ``none, tanh, relu, sigmoid, identity`` (default the four
            activations). ``none`` (DARTS' zero operation, which DARTS searches with and Li &
            Talwalkar leave out) adds a column to the relaxation only: it is never decoded and
            never part of an architecture, so the decisions and the size do not change.
    """

    name = "darts_rnn"
    architecture_type = DartsRNNArchitecture
    tiny_options = {"num_nodes": 2}

    def __init__(self, num_nodes: int = DEFAULT_NUM_NODES, operations: Optional[Sequence[str]] = None) -> None:
        if isinstance(num_nodes, bool) or not isinstance(num_nodes, int) or num_nodes < 1:
            raise ArchitectureError(f"space_options.num_nodes must be a positive integer, got {num_nodes!r}")
        ops = tuple(operations) if operations is not None else ACTIVATIONS
        if (len(set(ops)) != len(ops) or any(op not in OPERATIONS for op in ops)
                or not any(op in ACTIVATIONS for op in ops)):
            raise ArchitectureError(f"DARTS RNN operations {list(ops)} must name distinct operations of "
                                    f"{list(OPERATIONS)}, at least one activation")
        self.num_nodes = num_nodes
        #: the relaxation's columns, in DARTS' order (``none`` first where present)
        self.operations = tuple(op for op in OPERATIONS if op in ops)
        #: what an architecture's node can apply: the operations without ``none``
        self.activations = tuple(op for op in self.operations if op != "none")
        self.edges = rnn_edges(num_nodes)

    @property
    def size(self) -> int:
        """n! * |O|^n (Yu et al. 2020, Sec. 3.2)."""
        return math.factorial(self.num_nodes) * len(self.activations) ** self.num_nodes

    def sample(self, generator: torch.Generator) -> DartsRNNArchitecture:
        """Each node draws its predecessor and activation independently and uniformly: uniform over S,
        since every architecture is one such choice sequence."""
        nodes = []
        for i in range(1, self.num_nodes + 1):
            predecessor = int(torch.randint(i, (1,), generator=generator))
            activation = self.activations[int(torch.randint(len(self.activations), (1,), generator=generator))]
            nodes.append((activation, predecessor))
        return DartsRNNArchitecture(tuple(nodes))

    def parse(self, text: str) -> DartsRNNArchitecture:
        """The text form, or the name of a published cell (``darts_v1``, ``darts_v2``, ``enas``: see
        ``lightning_nas.spaces.darts_rnn_genotypes``)."""
        from lightning_nas.spaces.darts_rnn_genotypes import GENOTYPES, genotype

        if isinstance(text, str) and text.strip().lower() in GENOTYPES:
            arch = genotype(text)
            if arch.num_nodes != self.num_nodes:
                raise ArchitectureError(f"the {text.strip()} cell has {arch.num_nodes} nodes; this space's cells have "
                                        f"{self.num_nodes} (set space_options.num_nodes: {arch.num_nodes})")
            self.check(arch)
            return arch
        return super().parse(text)

    def check(self, arch: DartsRNNArchitecture) -> None:
        if arch.num_nodes != self.num_nodes:
            raise ArchitectureError(f"{arch} has {arch.num_nodes} nodes; this space's cells have {self.num_nodes}")
        outside = sorted({a for a, _ in arch.nodes} - set(self.activations))
        if outside:
            raise ArchitectureError(f"{arch} uses {outside}, outside this space's activations {list(self.activations)}")

    def enumerate(self) -> Iterator[DartsRNNArchitecture]:
        if self.size > 10 ** 7:
            raise NotImplementedError(f"{self.name} with {self.num_nodes} nodes has {self.size} architectures; "
                                      "too many to enumerate")
        choices = [[(op, j) for j in range(i) for op in self.activations] for i in range(1, self.num_nodes + 1)]
        for nodes in itertools.product(*choices):
            yield DartsRNNArchitecture(tuple(nodes))

    # ------------------------------------------------------------------ the contract
    @property
    def decisions(self) -> tuple[Choice, ...]:
        choices = []
        for i in range(1, self.num_nodes + 1):
            choices.append(Choice(f"node {i} input", tuple(str(j) for j in range(i)), kind="input"))
            choices.append(Choice(f"node {i} activation", self.activations))
        return tuple(choices)

    def to_decisions(self, arch: DartsRNNArchitecture) -> Picks:
        self.check(arch)
        picks: list[tuple[int, ...]] = []
        for activation, predecessor in arch.nodes:
            picks += [(predecessor,), (self.activations.index(activation),)]
        return tuple(picks)

    def from_decisions(self, picks) -> DartsRNNArchitecture:
        picks = self.check_picks(picks)
        return DartsRNNArchitecture(tuple((self.activations[picks[2 * k + 1][0]], picks[2 * k][0])
                                          for k in range(self.num_nodes)))

    @property
    def relaxation(self) -> tuple[WeightGroup, ...]:
        return (WeightGroup("ops", (len(self.edges), len(self.operations))),)

    def decode(self, weights: Weights) -> DartsRNNArchitecture:
        """DARTS' derivation for recurrent cells: per node, the (predecessor, activation) with the
        largest weight among the node's rows of the (len(edges), len(operations)) ``ops`` matrix
        (Liu et al. 2019, Sec. 2.4), ``none`` excluded as in DARTS' ``genotype()``; ties go to the
        first predecessor, then the first activation."""
        ops = weights["ops"]
        expected = (len(self.edges), len(self.operations))
        if tuple(ops.shape) != expected:
            raise ArchitectureError(f"DARTS RNN architecture weights 'ops' must have shape {expected} "
                                    f"(edges x activations), got {tuple(ops.shape)}")
        columns = [self.operations.index(a) for a in self.activations]
        ops = ops[:, columns]
        nodes = []
        row = 0
        for i in range(1, self.num_nodes + 1):
            predecessor, op = divmod(int(ops[row:row + i].reshape(-1).argmax()), len(self.activations))
            nodes.append((self.activations[op], predecessor))
            row += i
        return DartsRNNArchitecture(tuple(nodes))

    def one_hot(self, arch: DartsRNNArchitecture) -> dict[str, torch.Tensor]:
        self.check(arch)
        ops = torch.zeros(len(self.edges), len(self.operations))
        for i, (activation, predecessor) in enumerate(arch.nodes, start=1):
            ops[self.edges.index((i, predecessor)), self.operations.index(activation)] = 1.0
        return {"ops": ops}
