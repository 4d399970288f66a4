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

from lightning_nas.spaces.base import ArchitectureError, SearchSpace

ACTIVATIONS: tuple[str, ...] = ("tanh", "relu", "sigmoid", "identity")
#: DARTS' recurrent search space has 8 intermediate nodes (Liu et al. 2019, Sec. 3.1.2).
DEFAULT_NUM_NODES = 8


def rnn_edges(num_nodes: int) -> tuple[tuple[int, int], ...]:
    """(node, predecessor) of every possible edge, node-major: (1,0), (2,0), (2,1), (3,0), ...

    The row order of ``decode``'s (and ``forward_mixture``'s) weight matrix.
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


class DartsRNNSpace(SearchSpace[DartsRNNArchitecture]):
    """Args:
        num_nodes: intermediate nodes n (8: DARTS; 2: the 32-architecture space of Yu et al.).
        operations: a subset of the activations (default all four).
    """

    name = "darts_rnn"

    def __init__(self, num_nodes: int = DEFAULT_NUM_NODES, operations: Optional[Sequence[str]] = None) -> None:
        if isinstance(num_nodes, bool) or not isinstance(num_nodes, int) or num_nodes < 1:
            raise ArchitectureError(f"space_options.num_nodes must be a positive integer, got {num_nodes!r}")
        ops = tuple(operations) if operations is not None else ACTIVATIONS
        if not ops or len(set(ops)) != len(ops) or any(op not in ACTIVATIONS for op in ops):
            raise ArchitectureError(f"DARTS RNN activation subset {list(ops)} must name distinct activations of "
                                    f"{list(ACTIVATIONS)}")
        self.num_nodes = num_nodes
        #: the activations (named ``operations`` like every cell space, for strategies and networks)
        self.operations = tuple(op for op in ACTIVATIONS if op in ops)
        self.edges = rnn_edges(num_nodes)

    @property
    def size(self) -> int:
        """n! * |O|^n (Yu et al. 2020, Sec. 3.2)."""
        return math.factorial(self.num_nodes) * len(self.operations) ** self.num_nodes

    def sample(self, generator: torch.Generator) -> DartsRNNArchitecture:
        """Each node draws its predecessor and activation independently and uniformly: uniform over S,
        since every architecture is one such choice sequence."""
        nodes = []
        for i in range(1, self.num_nodes + 1):
            predecessor = int(torch.randint(i, (1,), generator=generator))
            activation = self.operations[int(torch.randint(len(self.operations), (1,), generator=generator))]
            nodes.append((activation, predecessor))
        return DartsRNNArchitecture(tuple(nodes))

    def parse(self, text: str) -> DartsRNNArchitecture:
        arch = DartsRNNArchitecture.from_string(text)
        self.check(arch)
        return arch

    def check(self, arch: DartsRNNArchitecture) -> None:
        if arch.num_nodes != self.num_nodes:
            raise ArchitectureError(f"{arch} has {arch.num_nodes} nodes; this space's cells have {self.num_nodes}")
        outside = sorted({a for a, _ in arch.nodes} - set(self.operations))
        if outside:
            raise ArchitectureError(f"{arch} uses {outside}, outside this space's activations {list(self.operations)}")

    def enumerate(self) -> Iterator[DartsRNNArchitecture]:
        if self.size > 10 ** 7:
            raise NotImplementedError(f"{self.name} with {self.num_nodes} nodes has {self.size} architectures; "
                                      "too many to enumerate")
        choices = [[(op, j) for j in range(i) for op in self.operations] for i in range(1, self.num_nodes + 1)]
        for nodes in itertools.product(*choices):
            yield DartsRNNArchitecture(tuple(nodes))

    def decode(self, arch_parameters: torch.Tensor) -> DartsRNNArchitecture:
        """DARTS' derivation for recurrent cells: per node, the (predecessor, activation) with the
        largest weight among the node's rows of a (len(edges), len(operations)) matrix (Liu et al.
        2019, Sec. 2.4, with no ``none`` operation in this space)."""
        expected = (len(self.edges), len(self.operations))
        if tuple(arch_parameters.shape) != expected:
            raise ArchitectureError(f"DARTS RNN architecture parameters must have shape {expected} "
                                    f"(edges x activations), got {tuple(arch_parameters.shape)}")
        nodes = []
        row = 0
        for i in range(1, self.num_nodes + 1):
            block = arch_parameters[row:row + i]
            flat = int(block.reshape(-1).argmax())
            predecessor, op = divmod(flat, len(self.operations))
            nodes.append((self.operations[op], predecessor))
            row += i
        return DartsRNNArchitecture(tuple(nodes))
