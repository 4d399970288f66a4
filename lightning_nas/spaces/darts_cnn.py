"""The DARTS convolutional cell space (Liu et al., ICLR 2019, Sec. 2.1 and 3.1.1) on CIFAR-10.

A network stacks two cell types, *normal* and *reduction*. Each cell has two input nodes (0: the
output of the cell before the previous one, 1: the previous cell) and ``num_nodes`` (4)
intermediate nodes 2..5; every intermediate node sums one operation applied to each of two
*distinct* earlier nodes; the cell outputs the concatenation of its intermediate nodes. In a
reduction cell the operations reading the input nodes have stride 2.

Decisions (the order of ``DartsCNNSpace.decisions``), per cell type (normal, then reduce), per
node i = 2..5, three choices:

- ``<cell> node i inputs``: 2 of the i earlier nodes (a pick-2 input choice, picks sorted);
- ``<cell> node i op a``: the operation on the *lower* picked input (1 of the 7 non-``none`` ops);
- ``<cell> node i op b``: the operation on the *higher* picked input.

So |S| = (prod_i C(i, 2) * 7^2)^2 = (180 * 7^8)^2 ~ 1.1e18 architectures for 4 nodes.

Relaxation (DARTS Eq. 2, PC-DARTS Eq. 4): per cell type a ``(14, 8)`` operation matrix
``<cell>_ops`` whose columns are ``OPERATIONS`` (``none`` included) and rows the 14 edges (node
i's edges from node 0..i-1, node-major), and a segmented ``(14,)`` vector ``<cell>_edges`` (one
softmax per node, created only by PC-DARTS). ``decode`` is DARTS' rule.

The architecture type ``Genotype`` is more general than the space: it also holds the published
cells outside it (NASNet, AmoebaNet, ENAS, NAO have 5 nodes, loose-end outputs, repeated inputs
and ops such as ``sep_conv_7x7``); those can be trained stand-alone but not searched.

Text form (``str(genotype)``, read back by ``Genotype.from_string``): two whitespace-separated
cells, ``normal=...`` then ``reduce=...``; each cell lists its nodes in order in NB201 style,
``|op~input|op~input|`` per node, nodes joined by ``+``. A cell whose output is not the
concatenation of all its intermediate nodes names them: ``normal[3,5,6]=...``. Example (DARTS V2):
``normal=|sep_conv_3x3~0|sep_conv_3x3~1|+|sep_conv_3x3~0|sep_conv_3x3~1|+|skip_connect~0|sep_conv_3x3~1|+|skip_connect~0|dil_conv_3x3~2|
reduce=|max_pool_3x3~0|max_pool_3x3~1|+|max_pool_3x3~1|skip_connect~2|+|max_pool_3x3~0|skip_connect~2|+|max_pool_3x3~1|skip_connect~2|``
(one line). The pairs of a node are kept sorted by (input, op): a node's sum does not depend on
their order. ``DartsCNNSpace.parse`` also accepts a published cell's name (``DARTS_V2``).
"""
from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

import torch

from lightning_nas.registry import SPACES
from lightning_nas.spaces.base import ArchitectureError, SearchSpace
from lightning_nas.spaces.decisions import Choice, Picks, WeightGroup, Weights

#: The DARTS CNN operations, in the order of DARTS' ``PRIMITIVES`` (the columns of ``<cell>_ops``).
OPERATIONS: tuple[str, ...] = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3",
                               "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
#: What a discrete node of the space may apply (``none`` is a relaxation-only option).
CELL_OPERATIONS: tuple[str, ...] = OPERATIONS[1:]
#: Operations of published cells outside the DARTS space (NASNet, AmoebaNet); buildable, not searchable.
EXTRA_OPERATIONS: tuple[str, ...] = ("sep_conv_7x7", "conv_7x1_1x7")
ALL_OPERATIONS: tuple[str, ...] = CELL_OPERATIONS + EXTRA_OPERATIONS
CELL_TYPES: tuple[str, ...] = ("normal", "reduce")
DEFAULT_NUM_NODES = 4

Node = tuple[tuple[str, int], ...]


def cell_edges(num_nodes: int) -> tuple[tuple[int, int], ...]:
    """(node, input) of every edge of a cell with ``num_nodes`` intermediate nodes, node-major:
    (2,0), (2,1), (3,0), (3,1), (3,2), ... (14 edges for 4 nodes). The rows of ``<cell>_ops``."""
    return tuple((node, source) for node in range(2, num_nodes + 2) for source in range(node))


def edge_index(node: int, source: int) -> int:
    """Row of edge ``source -> node`` in ``cell_edges`` (node >= 2, source < node)."""
    k = node - 2
    return k * (k + 3) // 2 + source


def node_segments(num_nodes: int) -> tuple[tuple[int, int], ...]:
    """``[start, end)`` of each node's incoming edges in ``cell_edges`` (PC-DARTS' softmax per node)."""
    return tuple((edge_index(node, 0), edge_index(node, 0) + node) for node in range(2, num_nodes + 2))


def _check_cell(label: str, nodes: Sequence[Sequence[tuple[str, int]]],
                concat: Sequence[int]) -> tuple[tuple[Node, ...], tuple[int, ...]]:
    if not nodes:
        raise ArchitectureError(f"the {label} cell needs at least one intermediate node")
    checked: list[Node] = []
    for i, node in enumerate(nodes, start=2):
        pairs = []
        if len(node) != 2:
            raise ArchitectureError(f"{label} node {i} must combine exactly 2 (op, input) pairs, got {len(node)}")
        for pair in node:
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
                raise ArchitectureError(f"{label} node {i}: {pair!r} is not an (op, input) pair")
            op, source = pair
            if op not in ALL_OPERATIONS:
                raise ArchitectureError(f"{label} node {i}: unknown operation {op!r}; known: {', '.join(ALL_OPERATIONS)}")
            if isinstance(source, bool) or not isinstance(source, int) or not 0 <= source < i:
                raise ArchitectureError(f"{label} node {i} must read nodes 0..{i - 1}, got input {source!r}")
            pairs.append((op, source))
        checked.append(tuple(sorted(pairs, key=lambda p: (p[1], p[0]))))
    concat = tuple(sorted(set(int(c) for c in concat)))
    last = len(nodes) + 1
    if not concat or concat[0] < 2 or concat[-1] > last:
        raise ArchitectureError(f"the {label} cell must output intermediate nodes among 2..{last}, got {list(concat)}")
    return tuple(checked), concat


@dataclass(frozen=True)
class Genotype:
    """A pair of discrete cells. ``normal[k]`` is intermediate node k+2 as two (op, input) pairs,
    sorted by (input, op); ``normal_concat`` the nodes the cell concatenates (default: all
    intermediate nodes). Immutable and hashable; ``str`` is the text form."""

    normal: tuple[Node, ...]
    reduce: tuple[Node, ...]
    normal_concat: tuple[int, ...] = ()
    reduce_concat: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        for label in CELL_TYPES:
            nodes = getattr(self, label)
            concat = getattr(self, f"{label}_concat") or tuple(range(2, len(nodes) + 2))
            nodes, concat = _check_cell(label, nodes, concat)
            object.__setattr__(self, label, nodes)
            object.__setattr__(self, f"{label}_concat", concat)

    @classmethod
    def from_pairs(cls, normal: Sequence[tuple[str, int]], reduce: Sequence[tuple[str, int]],
                   normal_concat: Optional[Sequence[int]] = None,
                   reduce_concat: Optional[Sequence[int]] = None) -> "Genotype":
        """From DARTS' flat lists of (op, input) pairs, two consecutive pairs per node."""
        def nodes(flat: Sequence[tuple[str, int]]) -> tuple[Node, ...]:
            if len(flat) % 2:
                raise ArchitectureError(f"a flat cell lists two (op, input) pairs per node, got {len(flat)} pairs")
            return tuple((tuple(flat[i]), tuple(flat[i + 1])) for i in range(0, len(flat), 2))  # type: ignore[misc]
        return cls(nodes(normal), nodes(reduce), tuple(normal_concat or ()), tuple(reduce_concat or ()))

    def cell(self, label: str) -> tuple[Node, ...]:
        return getattr(self, label)

    def concat(self, label: str) -> tuple[int, ...]:
        return getattr(self, f"{label}_concat")

    @property
    def num_nodes(self) -> int:
        return max(len(self.normal), len(self.reduce))

    def __str__(self) -> str:
        parts = []
        for label in CELL_TYPES:
            nodes, concat = self.cell(label), self.concat(label)
            head = label if concat == tuple(range(2, len(nodes) + 2)) else f"{label}[{','.join(map(str, concat))}]"
            body = "+".join("|" + "|".join(f"{op}~{src}" for op, src in node) + "|" for node in nodes)
            parts.append(f"{head}={body}")
        return " ".join(parts)

    @classmethod
    def from_string(cls, text: str) -> "Genotype":
        example = str(PUBLISHED["DARTS_V2"])

        def fail(why: str) -> ArchitectureError:
            return ArchitectureError(f"malformed DARTS CNN genotype {text!r}: {why}; expected e.g. {example}")

        if not isinstance(text, str):
            raise fail("not a string")
        tokens = text.split()
        if len(tokens) != 2:
            raise fail(f"{len(tokens)} whitespace-separated cells instead of 2 (normal=..., reduce=...)")
        cells: dict[str, tuple[list[Node], tuple[int, ...]]] = {}
        for label, token in zip(CELL_TYPES, tokens, strict=True):
            match = re.fullmatch(rf"{label}(?:\[(\d+(?:,\d+)*)\])?=(.+)", token)
            if match is None:
                raise fail(f"cell {token[:20]!r}... must read '{label}=...' or '{label}[i,j,...]=...'")
            concat = tuple(int(c) for c in match.group(1).split(",")) if match.group(1) else ()
            nodes: list[Node] = []
            for i, group in enumerate(match.group(2).split("+"), start=2):
                if len(group) < 2 or not (group.startswith("|") and group.endswith("|")):
                    raise fail(f"{label} node {i} {group!r} must be enclosed in '|'")
                pairs = []
                for cell in group[1:-1].split("|"):
                    op, sep, src = cell.partition("~")
                    if not sep or not src.isdigit():
                        raise fail(f"{label} node {i}: {cell!r} must read 'op~input'")
                    pairs.append((op, int(src)))
                nodes.append(tuple(pairs))
            cells[label] = (nodes, concat)
        return cls(tuple(cells["normal"][0]), tuple(cells["reduce"][0]), cells["normal"][1], cells["reduce"][1])


# ---------------------------------------------------------------------------------------------
# Published cells. DARTS V1/V2, NASNet-A and AmoebaNet-A as in DARTS' released genotypes
# (Liu et al. 2019). ENAS (Pham et al. 2018, Fig. 7/8) as transcribed by later benchmarks: two of
# the three transcriptions we checked agree on this one; one differs in normal nodes 5-6.
# NAO: the NAO-WS cell ("NAONet-B", Luo et al. 2018), decoded from the authors' released
# architecture string (ops 0..4 = sep 3x3, sep 5x5, avg pool, max pool, identity; the cell
# outputs its loose ends). The random-search-with-weight-sharing cell of Li & Talwalkar (2019) is
# not included: its genotype is only a figure in the paper and we found no reliable transcription.
PUBLISHED: dict[str, Genotype] = {
    "DARTS_V1": Genotype.from_pairs(
        [("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 0), ("sep_conv_3x3", 1),
         ("skip_connect", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 2)],
        [("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 0),
         ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("avg_pool_3x3", 0)]),
    "DARTS_V2": Genotype.from_pairs(
        [("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
         ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)],
        [("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
         ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)]),
    "NASNet": Genotype.from_pairs(
        [("sep_conv_5x5", 1), ("sep_conv_3x3", 0), ("sep_conv_5x5", 0), ("sep_conv_3x3", 0),
         ("avg_pool_3x3", 1), ("skip_connect", 0), ("avg_pool_3x3", 0), ("avg_pool_3x3", 0),
         ("sep_conv_3x3", 1), ("skip_connect", 1)],
        [("sep_conv_5x5", 1), ("sep_conv_7x7", 0), ("max_pool_3x3", 1), ("sep_conv_7x7", 0),
         ("avg_pool_3x3", 1), ("sep_conv_5x5", 0), ("skip_connect", 3), ("avg_pool_3x3", 2),
         ("sep_conv_3x3", 2), ("max_pool_3x3", 1)],
        normal_concat=[2, 3, 4, 5, 6], reduce_concat=[4, 5, 6]),
    "AmoebaNet": Genotype.from_pairs(
        [("avg_pool_3x3", 0), ("max_pool_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_5x5", 2),
         ("sep_conv_3x3", 0), ("avg_pool_3x3", 3), ("sep_conv_3x3", 1), ("skip_connect", 1),
         ("skip_connect", 0), ("avg_pool_3x3", 1)],
        [("avg_pool_3x3", 0), ("sep_conv_3x3", 1), ("max_pool_3x3", 0), ("sep_conv_7x7", 2),
         ("sep_conv_7x7", 0), ("avg_pool_3x3", 1), ("max_pool_3x3", 0), ("max_pool_3x3", 1),
         ("conv_7x1_1x7", 0), ("sep_conv_3x3", 5)],
        normal_concat=[4, 5, 6], reduce_concat=[3, 4, 6]),
    "ENAS": Genotype.from_pairs(
        [("sep_conv_3x3", 1), ("skip_connect", 1), ("sep_conv_5x5", 1), ("skip_connect", 0),
         ("avg_pool_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("avg_pool_3x3", 1),
         ("sep_conv_5x5", 1), ("avg_pool_3x3", 0)],
        [("sep_conv_5x5", 0), ("avg_pool_3x3", 1), ("sep_conv_3x3", 1), ("avg_pool_3x3", 1),
         ("sep_conv_3x3", 1), ("avg_pool_3x3", 1), ("sep_conv_5x5", 4), ("avg_pool_3x3", 1),
         ("sep_conv_3x3", 5), ("sep_conv_5x5", 0)],
        normal_concat=[2, 3, 4, 5, 6], reduce_concat=[2, 3, 6]),
    "NAO": Genotype.from_pairs(
        [("sep_conv_5x5", 0), ("avg_pool_3x3", 0), ("sep_conv_5x5", 0), ("avg_pool_3x3", 2),
         ("max_pool_3x3", 1), ("avg_pool_3x3", 0), ("sep_conv_3x3", 4), ("max_pool_3x3", 1),
         ("sep_conv_5x5", 2), ("max_pool_3x3", 0)],
        [("sep_conv_5x5", 1), ("sep_conv_3x3", 1), ("sep_conv_5x5", 2), ("skip_connect", 2),
         ("sep_conv_3x3", 1), ("max_pool_3x3", 2), ("sep_conv_5x5", 3), ("avg_pool_3x3", 2),
         ("avg_pool_3x3", 0), ("avg_pool_3x3", 0)],
        normal_concat=[3, 5, 6], reduce_concat=[4, 5, 6]),
}
PUBLISHED["DARTS"] = PUBLISHED["DARTS_V2"]


def genotype(name: str) -> Genotype:
    """A published cell by name (case-insensitive): DARTS_V1, DARTS_V2 (= DARTS), ENAS, NAO, AmoebaNet, NASNet."""
    for key, value in PUBLISHED.items():
        if key.lower() == name.strip().lower():
            return value
    raise ArchitectureError(f"unknown published DARTS CNN genotype {name!r}; known: {', '.join(PUBLISHED)}")


@SPACES.register("darts_cnn")
class DartsCNNSpace(SearchSpace[Genotype]):
    """The DARTS CNN cell space (module docstring).

    Args:
        num_nodes: intermediate nodes per cell (DARTS: 4).
        operations: a subset of the 7 non-``none`` operations (a reduced space for fixtures and
            tests); ``none`` stays the first column of the relaxation. Default: all of them.
    """

    name = "darts_cnn"
    architecture_type = Genotype
    #: 1 node, 2 operations: 16 architectures (the contract tests enumerate it)
    tiny_options = {"num_nodes": 1, "operations": ("skip_connect", "sep_conv_3x3")}

    def __init__(self, num_nodes: int = DEFAULT_NUM_NODES, operations: Optional[Sequence[str]] = None) -> None:
        if num_nodes < 1:
            raise ArchitectureError(f"a DARTS CNN cell needs at least 1 intermediate node, got {num_nodes}")
        chosen = [op for op in (operations if operations is not None else CELL_OPERATIONS) if op != "none"]
        unknown = [op for op in chosen if op not in CELL_OPERATIONS]
        if unknown or not chosen or len(set(chosen)) != len(chosen):
            raise ArchitectureError(f"DARTS CNN operation subset {list(operations or [])} must name distinct "
                                    f"operations of {list(CELL_OPERATIONS)}")
        self.num_nodes = num_nodes
        self.edges = cell_edges(num_nodes)
        #: the discrete cells' operations (the decisions' options), in DARTS' order
        self.cell_operations: tuple[str, ...] = tuple(op for op in CELL_OPERATIONS if op in chosen)
        #: the relaxation's columns: ``none`` first
        self.operations: tuple[str, ...] = ("none",) + self.cell_operations

    # ------------------------------------------------------------------ architectures
    @property
    def size(self) -> int:
        per_cell = 1
        for node in range(2, self.num_nodes + 2):
            per_cell *= math.comb(node, 2) * len(self.cell_operations) ** 2
        return per_cell ** 2

    def enumerate(self) -> Iterator[Genotype]:
        """Every architecture, in the order of the decisions' picks (only sensible for small spaces)."""
        options = [list(itertools.combinations(range(len(c)), c.pick)) for c in self.decisions]
        for picks in itertools.product(*options):
            yield self.from_decisions(picks)

    def parse(self, text: str) -> Genotype:
        """The genotype of a text form, or of a published cell's name. Published cells outside this
        space (5 nodes, loose ends, ``sep_conv_7x7``) parse too: they can be trained stand-alone."""
        text = text.strip() if isinstance(text, str) else text
        if isinstance(text, str) and text and "=" not in text:
            return genotype(text)
        return Genotype.from_string(text)

    def contains(self, arch: Genotype) -> bool:
        try:
            self.check(arch)
        except ArchitectureError:
            return False
        return True

    def check(self, arch: Genotype) -> None:
        """ArchitectureError unless ``arch`` is a member of this space (one line saying why)."""
        for label in CELL_TYPES:
            nodes = arch.cell(label)
            if len(nodes) != self.num_nodes:
                raise ArchitectureError(f"{arch}: the {label} cell has {len(nodes)} nodes, this space {self.num_nodes}")
            if arch.concat(label) != tuple(range(2, self.num_nodes + 2)):
                raise ArchitectureError(f"{arch}: the {label} cell outputs nodes {list(arch.concat(label))}; this space "
                                        f"concatenates all intermediate nodes")
            for i, node in enumerate(nodes, start=2):
                if node[0][1] == node[1][1]:
                    raise ArchitectureError(f"{arch}: {label} node {i} reads node {node[0][1]} twice; "
                                            "this space picks 2 distinct inputs")
                outside = [op for op, _ in node if op not in self.cell_operations]
                if outside:
                    raise ArchitectureError(f"{arch}: {label} node {i} uses {outside}, outside {list(self.cell_operations)}")

    # ------------------------------------------------------------------ decisions
    @property
    def decisions(self) -> tuple[Choice, ...]:
        choices = []
        for label in CELL_TYPES:
            for node in range(2, self.num_nodes + 2):
                choices.append(Choice(f"{label} node {node} inputs", tuple(str(j) for j in range(node)), pick=2,
                                      kind="input"))
                choices.append(Choice(f"{label} node {node} op a", self.cell_operations))
                choices.append(Choice(f"{label} node {node} op b", self.cell_operations))
        return tuple(choices)

    def to_decisions(self, arch: Genotype) -> Picks:
        self.check(arch)
        picks: list[tuple[int, ...]] = []
        for label in CELL_TYPES:
            for (op_a, a), (op_b, b) in arch.cell(label):  # sorted: a < b
                picks += [(a, b), (self.cell_operations.index(op_a),), (self.cell_operations.index(op_b),)]
        return tuple(picks)

    def from_decisions(self, picks: Sequence[Sequence[int]]) -> Genotype:
        picks = self.check_picks(picks)
        cells: dict[str, list[Node]] = {label: [] for label in CELL_TYPES}
        it = iter(picks)
        for label in CELL_TYPES:
            for _ in range(self.num_nodes):
                (a, b), (op_a,), (op_b,) = next(it), next(it), next(it)
                cells[label].append(((self.cell_operations[op_a], a), (self.cell_operations[op_b], b)))
        return Genotype(tuple(cells["normal"]), tuple(cells["reduce"]))

    # ------------------------------------------------------------------ relaxation
    @property
    def relaxation(self) -> tuple[WeightGroup, ...]:
        rows, segments = len(self.edges), node_segments(self.num_nodes)
        cols = len(self.operations)
        return (WeightGroup("normal_ops", (rows, cols)), WeightGroup("reduce_ops", (rows, cols)),
                WeightGroup("normal_edges", (rows,), segments, edge_normalisation=True),
                WeightGroup("reduce_edges", (rows,), segments, edge_normalisation=True))

    def decode(self, weights: Weights) -> Genotype:
        """DARTS' rule (Liu et al. 2019, Sec. 2.4): per node keep the 2 incoming edges whose strongest
        non-``none`` weight is largest (ties: the lower input), each with its arg-max non-``none``
        operation. With PC-DARTS' edge weights, an edge's strength is multiplied by its edge weight
        (Xu et al. 2020, Sec. 3.3); the operation choice is unchanged."""
        cells: dict[str, list[Node]] = {}
        for label in CELL_TYPES:
            ops = weights[f"{label}_ops"].detach().float().cpu()
            expected = (len(self.edges), len(self.operations))
            if tuple(ops.shape) != expected:
                raise ArchitectureError(f"DARTS CNN weights '{label}_ops' must have shape {expected}, got {tuple(ops.shape)}")
            edge_w = weights.get(f"{label}_edges")
            real = ops[:, 1:]  # without `none`
            strength, best = real.max(dim=-1)
            if edge_w is not None:
                strength = strength * edge_w.detach().float().cpu()
            nodes: list[Node] = []
            for node in range(2, self.num_nodes + 2):
                rows = [edge_index(node, j) for j in range(node)]
                ranked = sorted(range(node), key=lambda j: -float(strength[rows[j]]))[:2]
                nodes.append(tuple((self.cell_operations[int(best[rows[j]])], j) for j in ranked))  # type: ignore[misc]
            cells[label] = nodes
        return Genotype(tuple(cells["normal"]), tuple(cells["reduce"]))

    def one_hot(self, arch: Genotype) -> dict[str, torch.Tensor]:
        """1 on each chosen (edge, op), ``none`` on the edges a node does not read; edge weights 1 on
        chosen edges and 0 elsewhere (so every product in the relaxed forward is exact)."""
        self.check(arch)
        out: dict[str, torch.Tensor] = {}
        for label in CELL_TYPES:
            ops = torch.zeros(len(self.edges), len(self.operations))
            ops[:, 0] = 1.0
            edges = torch.zeros(len(self.edges))
            for node, pairs in enumerate(arch.cell(label), start=2):
                for op, source in pairs:
                    row = edge_index(node, source)
                    ops[row, 0] = 0.0
                    ops[row, self.operations.index(op)] = 1.0
                    edges[row] = 1.0
            out[f"{label}_ops"], out[f"{label}_edges"] = ops, edges
        return out


def architecture_map(arch: Genotype) -> dict[str, dict[int, list[str]]]:
    """For each cell type, edge index -> the operation names the discrete cell applies on it."""
    result: dict[str, dict[int, list[str]]] = {}
    for label in CELL_TYPES:
        edges: dict[int, list[str]] = {}
        for node, pairs in enumerate(arch.cell(label), start=2):
            for op, source in pairs:
                edges.setdefault(edge_index(node, source), []).append(op)
        result[label] = edges
    return result

