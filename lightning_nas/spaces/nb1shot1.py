"""NAS-Bench-1Shot1 search spaces 1, 2 and 3 (Zela et al., ICLR 2020): one-shot views of NAS-Bench-101.

A cell has m choice blocks (m = 4 for spaces 1 and 2, 5 for space 3) between its input (node 0)
and its output (node m+1). Choice block j takes a fixed number of parents among nodes 0..j-1 and
one of the three NB101 operations; the output concatenates a fixed number of parents among nodes
0..m (node 0 through the input projection). The numbers of parents (the paper's Table 1) sum to 9,
NB101's edge limit:

    space   blocks 1..m          output
    1       1, 2, 2, 2           2
    2       1, 1, 2, 2           3
    3       1, 1, 1, 2, 2        2

Every choice of parents and operations is an NB101 cell (``to_nb101``); its benchmark key is that
cell's graph hash. A block without a path to the output is a *loose end* (pruned by NB101).

Relaxation (Sec. 3.1): ``ops`` (m, 3), one softmax row per choice block (the paper's beta);
``inputs``, the weights of the candidate parents of every block that has a choice, a softmax per
block (the paper's alpha); ``output``, the weights of the output's candidate parents, one
softmax (gamma). Decoding (Sec. 3.2): arg-max operation per block, top-k parents per block and for
the output.

Text form: one ``op~parents`` per block then ``output~parents``, ``|``-separated, e.g.
``conv3x3-bn-relu~0|conv1x1-bn-relu~0,1|maxpool3x3~1,2|conv3x3-bn-relu~0,3|output~3,4``.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import cached_property
from typing import Iterator, Optional, Sequence

import torch

from lightning_nas.registry import SPACES
from lightning_nas.spaces.base import ArchitectureError, SearchSpace, operation_subset
from lightning_nas.spaces.decisions import Choice, Picks, WeightGroup, Weights
from lightning_nas.spaces.nb101 import OPERATIONS, NB101Cell

#: parents of choice blocks 1..m, then of the output (Zela et al. 2020, Table 1)
PARENTS: dict[int, tuple[int, ...]] = {1: (1, 2, 2, 2, 2), 2: (1, 1, 2, 2, 3), 3: (1, 1, 1, 2, 2, 2)}
#: published counts (Table 1): with loose ends, without loose ends
PUBLISHED_COUNTS: dict[int, tuple[int, int]] = {1: (6240, 2487), 2: (29160, 3609), 3: (363648, 24066)}


@dataclass(frozen=True, order=True)
class NB1Shot1Architecture:
    """``ops[j-1]``: the operation of choice block j; ``parents[j-1]``: its sorted parents; ``parents[-1]``: the output's."""

    ops: tuple[str, ...]
    parents: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "ops", tuple(self.ops))
        object.__setattr__(self, "parents", tuple(tuple(sorted(int(i) for i in p)) for p in self.parents))
        m = len(self.ops)
        if len(self.parents) != m + 1:
            raise ArchitectureError(f"a NAS-Bench-1Shot1 cell with {m} choice blocks needs {m + 1} parent lists, got {len(self.parents)}")
        for op in self.ops:
            if op not in OPERATIONS:
                raise ArchitectureError(f"unknown operation {op!r}; choice blocks take one of {list(OPERATIONS)}")
        for j, ps in enumerate(self.parents, start=1):
            if not ps or len(set(ps)) != len(ps) or not all(0 <= i < j for i in ps):
                raise ArchitectureError(f"node {j}'s parents {list(ps)} must be distinct nodes in 0..{j - 1}")

    @property
    def num_blocks(self) -> int:
        return len(self.ops)

    def __str__(self) -> str:
        blocks = [f"{op}~{','.join(map(str, ps))}" for op, ps in zip(self.ops, self.parents[:-1], strict=True)]
        return "|".join(blocks + ["output~" + ",".join(map(str, self.parents[-1]))])

    @classmethod
    def from_string(cls, text: str) -> "NB1Shot1Architecture":
        example = "conv3x3-bn-relu~0|conv1x1-bn-relu~0|maxpool3x3~1,2|conv3x3-bn-relu~0,3|output~3,4"
        parts = str(text).strip().split("|")
        ops, parents = [], []
        for k, part in enumerate(parts):
            op, sep, ps = part.partition("~")
            if not sep or not ps or not all(p.isdigit() for p in ps.split(",")):
                raise ArchitectureError(f"malformed NAS-Bench-1Shot1 cell {text!r}: part {part!r} must read 'op~parents'; e.g. {example}")
            if (op == "output") != (k == len(parts) - 1):
                raise ArchitectureError(f"malformed NAS-Bench-1Shot1 cell {text!r}: the last part, and only it, is 'output~parents'")
            if op != "output":
                ops.append(op)
            parents.append(tuple(int(p) for p in ps.split(",")))
        return cls(tuple(ops), tuple(parents))

    @cached_property
    def live(self) -> frozenset[int]:
        """Choice blocks with a path to the output (the others are loose ends)."""
        m = self.num_blocks
        live, frontier = set(), [i for i in self.parents[-1] if i > 0]
        while frontier:
            j = frontier.pop()
            if j not in live:
                live.add(j)
                frontier.extend(i for i in self.parents[j - 1] if i > 0)
        return frozenset(live) if m else frozenset()

    @property
    def has_loose_ends(self) -> bool:
        return len(self.live) < self.num_blocks

    def to_nb101(self) -> NB101Cell:
        """The NB101 cell (m + 2 vertices; loose ends are kept and pruned by NB101 itself)."""
        return NB101Cell.from_parents(self.parents, self.ops)


@SPACES.register("nb1shot1")
class NB1Shot1Space(SearchSpace[NB1Shot1Architecture]):
    """NAS-Bench-1Shot1 search space ``search_space`` (1, 2 or 3).

    Decisions, per choice block j: its parents (``Choice(..., pick=k_j)`` among nodes 0..j-1) and
    its operation; then the output's parents. Every combination is an architecture (architectures
    "with loose ends" in the paper's count); ``key`` is the graph hash of its NB101 cell.
    """

    name = "nb1shot1"
    architecture_type = NB1Shot1Architecture
    #: search space 1 with one operation: 180 architectures (the contract test enumerates it)
    tiny_options = {"search_space": 1, "operations": ("conv1x1-bn-relu",)}

    def __init__(self, search_space: int = 3, operations: Optional[Sequence[str]] = None) -> None:
        """``operations``: a subset of the three NB101 operations (a reduced space; default all three)."""
        if search_space not in PARENTS:
            raise ArchitectureError(f"space_options.search_space must be 1, 2 or 3, got {search_space!r}")
        self.search_space = search_space
        self.num_parents = PARENTS[search_space]
        self.num_blocks = len(self.num_parents) - 1
        self.operations = operation_subset(operations, OPERATIONS, "NAS-Bench-1Shot1")

    # ------------------------------------------------------------------ architectures
    @property
    def size(self) -> int:
        return math.prod(math.comb(j, k) for j, k in enumerate(self.num_parents, start=1)) * len(self.operations) ** self.num_blocks

    def check(self, arch: NB1Shot1Architecture) -> NB1Shot1Architecture:
        if arch.num_blocks != self.num_blocks:
            raise ArchitectureError(f"{arch} has {arch.num_blocks} choice blocks; search space {self.search_space} has {self.num_blocks}")
        outside = sorted(set(arch.ops) - set(self.operations))
        if outside:
            raise ArchitectureError(f"{arch} uses {outside}, outside this space's operations {list(self.operations)}")
        for j, (ps, k) in enumerate(zip(arch.parents, self.num_parents, strict=True), start=1):
            if len(ps) != k:
                node = "the output" if j == len(self.num_parents) else f"choice block {j}"
                raise ArchitectureError(f"{arch}: {node} takes {k} parent(s) in search space {self.search_space}, got {list(ps)}")
        return arch

    def enumerate(self) -> Iterator[NB1Shot1Architecture]:
        choices = [itertools.combinations(range(j), k) for j, k in enumerate(self.num_parents, start=1)]
        for parents in itertools.product(*map(list, choices)):
            for ops in itertools.product(self.operations, repeat=self.num_blocks):
                yield NB1Shot1Architecture(ops, parents)

    def key(self, arch: NB1Shot1Architecture) -> str:
        return arch.to_nb101().hash

    def _parent_choices(self) -> list[list[tuple[int, ...]]]:
        return [list(itertools.combinations(range(j), k)) for j, k in enumerate(self.num_parents, start=1)]

    def count_with_loose_ends(self) -> int:
        """The paper's count with loose ends: for every choice of parents, 3 operations per choice block
        that feeds another node (a block without children is absent from the cell, its operation moot).
        Reproduces Table 1 for spaces 1 and 3 (6,240 and 363,648); for space 2 it gives 16,632 where
        Table 1 reports 29,160 = ``size``, every (parents, operations) combination."""
        total = 0
        for parents in itertools.product(*self._parent_choices()):
            fed = {p for ps in parents for p in ps if p > 0}
            total += len(self.operations) ** len(fed)
        return total

    def _generator_graphs(self) -> Iterator[tuple[tuple[int, ...], ...]]:
        """The graphs the paper's released generator of loose-end-free cells visits, re-implemented.

        Starting at the output it adds the parents of a node one at a time, descending into each new
        parent before adding the next, and emits a graph whenever it is *complete*: every node with
        inputs has exactly its number of parents, as many nodes have inputs as have outputs, the
        input has an output, at most 9 edges. It therefore reaches only part of the loose-end-free
        graphs; its totals are Table 1's "w/o loose ends" numbers."""
        n = self.num_blocks + 2
        required = (0,) + self.num_parents

        def complete(adj: list[list[int]]) -> bool:
            outs = [sum(row) for row in adj]
            ins = [sum(adj[u][v] for u in range(n)) for v in range(n)]
            return (any(outs[1:-1]) and all(c == 0 or c == required[v] for v, c in enumerate(ins))
                    and sum(c > 0 for c in ins) == sum(c > 0 for c in outs) and outs[0] > 0 and sum(outs) <= 9)

        def visit(adj: list[list[int]], node: int) -> Iterator[list[list[int]]]:
            if complete(adj):
                yield adj
                return
            missing = required[node] - sum(adj[u][node] for u in range(n))
            free = [u for u in range(node) if not adj[u][node]]
            for chosen in ([(0,)] if node == 1 else itertools.combinations(free, missing)):
                graph = [row[:] for row in adj]
                for parent in chosen:
                    graph[parent][node] = 1
                    yield from visit(graph, parent)

        for adj in visit([[0] * n for _ in range(n)], n - 1):
            yield tuple(map(tuple, adj))

    def count_without_loose_ends(self) -> int:
        """Table 1's "w/o loose ends": 3 operations per used block over the generator's graphs (2,487 / 3,609 / 24,066)."""
        return sum(len(self.operations) ** sum(1 for row in adj[1:-1] if any(row)) for adj in self._generator_graphs())

    def count(self) -> dict[str, int]:
        """Every count of ``docs/nb101.md``: combinations, the paper's two counts, and the combinations
        without loose ends and their distinct NB101 hashes (both computed over ``enumerate``)."""
        free, hashes = 0, set()
        for arch in self.enumerate():
            if not arch.has_loose_ends:
                free += 1
                hashes.add(self.key(arch))
        return {"combinations": self.size, "with_loose_ends": self.count_with_loose_ends(),
                "without_loose_ends": self.count_without_loose_ends(), "combinations_without_loose_ends": free,
                "unique_cells_without_loose_ends": len(hashes)}

    # ------------------------------------------------------------------ the contract
    @cached_property
    def decisions(self) -> tuple[Choice, ...]:
        out: list[Choice] = []
        for j, k in enumerate(self.num_parents[:-1], start=1):
            nodes = ("input",) + tuple(f"block {i}" for i in range(1, j))
            out.append(Choice(f"block {j} inputs", nodes, pick=k, kind="input"))
            out.append(Choice(f"block {j} op", self.operations))
        nodes = ("input",) + tuple(f"block {i}" for i in range(1, self.num_blocks + 1))
        out.append(Choice("output inputs", nodes, pick=self.num_parents[-1], kind="input"))
        return tuple(out)

    def to_decisions(self, arch: NB1Shot1Architecture) -> Picks:
        self.check(arch)
        picks: list[tuple[int, ...]] = []
        for ps, op in zip(arch.parents[:-1], arch.ops, strict=True):  # the choice blocks; the output's parents last
            picks += [ps, (self.operations.index(op),)]
        return tuple(picks + [arch.parents[-1]])

    def from_decisions(self, picks) -> NB1Shot1Architecture:
        picks = self.check_picks(picks)
        m = self.num_blocks
        ops = tuple(self.operations[picks[2 * j + 1][0]] for j in range(m))
        parents = tuple(picks[2 * j] for j in range(m)) + (picks[-1],)
        return NB1Shot1Architecture(ops, parents)

    @cached_property
    def input_segments(self) -> dict[int, tuple[int, int]]:
        """Choice block j -> its slice of the ``inputs`` group (blocks whose parents are forced have none)."""
        segments, start = {}, 0
        for j, k in enumerate(self.num_parents[:-1], start=1):
            if k < j:
                segments[j] = (start, start + j)
                start += j
        return segments

    @property
    def relaxation(self) -> tuple[WeightGroup, ...]:
        segs = tuple(self.input_segments.values())
        m = self.num_blocks
        return (WeightGroup("ops", (m, len(self.operations))),
                WeightGroup("inputs", (segs[-1][1],), segs),
                WeightGroup("output", (m + 1,), ((0, m + 1),)))

    def decode(self, weights: Weights) -> NB1Shot1Architecture:
        """Arg-max operation per block; the top-k weighted parents per block and for the output (Zela et al., Sec. 3.2)."""
        m = self.num_blocks
        for group in self.relaxation:
            if tuple(weights[group.name].shape) != group.shape:
                raise ArchitectureError(f"NAS-Bench-1Shot1 weights {group.name!r} must have shape {group.shape}, "
                                        f"got {tuple(weights[group.name].shape)}")
        ops = tuple(self.operations[int(i)] for i in weights["ops"].argmax(dim=-1))
        parents = []
        for j, k in enumerate(self.num_parents[:-1], start=1):
            if j in self.input_segments:
                a, b = self.input_segments[j]
                parents.append(tuple(int(i) for i in torch.topk(weights["inputs"][a:b], k).indices))
            else:
                parents.append(tuple(range(j)))
        parents.append(tuple(int(i) for i in torch.topk(weights["output"], self.num_parents[-1]).indices))
        assert len(parents) == m + 1
        return NB1Shot1Architecture(ops, tuple(parents))

    def one_hot(self, arch: NB1Shot1Architecture) -> dict[str, torch.Tensor]:
        self.check(arch)
        ops = torch.zeros(self.num_blocks, len(self.operations))
        for j, op in enumerate(arch.ops):
            ops[j, self.operations.index(op)] = 1.0
        inputs = torch.zeros(self.relaxation[1].shape)
        for j, (a, _) in self.input_segments.items():
            for i in arch.parents[j - 1]:
                inputs[a + i] = 1.0
        output = torch.zeros(self.num_blocks + 1)
        output[list(arch.parents[-1])] = 1.0
        return {"ops": ops, "inputs": inputs, "output": output}
