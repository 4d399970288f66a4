"""NAS-Bench-101 cells (Ying et al. 2019) and the weight-sharing n-vertex spaces of Yu et al. (2020).

A cell is an upper-triangular 0/1 adjacency matrix over at most 7 vertices (at most 9 edges) and
one operation per vertex: ``input`` first, ``output`` last, and one of ``conv3x3-bn-relu``,
``conv1x1-bn-relu``, ``maxpool3x3`` in between. Vertices that are not on an input-to-output path
are *pruned* (they cannot influence the output); a cell whose input does not reach its output is
invalid. Two cells compute the same function when their pruned forms are isomorphic as labelled
graphs; the benchmark identifies them by its graph hash (``graph_hash``: iterated MD5 hashing of
in/out degrees and labels), which this module reproduces exactly: ``NB101Cell.hash`` is the key
of the official data.

Text form: the matrix rows as 0/1 strings joined by ``.``, a ``|``, the operations joined by
``,``, e.g. ``011.001.000|input,conv3x3-bn-relu,output``.

``NB101Space(num_vertices=n)`` is the weight-sharing space with n vertices ("Evaluating the Search
Phase", Yu et al. 2020, Sec. 3.2: n = 4..7): one decision per possible edge (absent/present) and
one operation per intermediate vertex. ``from_decisions`` rejects invalid combinations, so the
default rejection sampling is uniform over the valid (unpruned) n-vertex cells; ``unique_cells``
enumerates one representative per graph hash (the count Yu et al. and the benchmark report).
"""
from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from functools import cached_property
from typing import Iterator, Optional, Sequence


from lightning_nas.registry import SPACES
from lightning_nas.spaces.base import ArchitectureError, SearchSpace, operation_subset
from lightning_nas.spaces.decisions import Choice, Picks

INPUT, OUTPUT = "input", "output"
CONV3X3, CONV1X1, MAXPOOL3X3 = "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"
#: The benchmark's ``available_ops`` in its own order: the label of an operation in the hash is its index here.
OPERATIONS: tuple[str, ...] = (CONV3X3, CONV1X1, MAXPOOL3X3)
MAX_VERTICES = 7
MAX_EDGES = 9
#: Channel switches of the n-vertex super-net (``lightning_nas.nn.nb101``); see ``NB101Space``.
CHANNEL_MODES = ("split", "fixed", "shuffle", "interpolate")

Matrix = tuple[tuple[int, ...], ...]
#: n -> number of n-vertex edge patterns giving a valid cell (``NB101Space.count_valid_edge_patterns``;
#: n = 7 takes minutes to recount, hence the table)
VALID_EDGE_PATTERNS = {3: 5, 4: 47, 5: 840, 6: 27142, 7: 1538083}


def graph_hash(matrix: Sequence[Sequence[int]], labels: Sequence[int]) -> str:
    """The benchmark's graph-invariant MD5 hash of an (upper-triangular) matrix and integer labels.

    Each vertex starts from the MD5 of ``str((out_degree, in_degree, label))``; then, as many
    rounds as there are vertices, a vertex hashes its sorted in-neighbour hashes, its sorted
    out-neighbour hashes and its own hash, separated by ``|``; the fingerprint is the MD5 of the
    string form of the sorted list of vertex hashes. Labels: -1 input, -2 output, else the index
    in ``OPERATIONS``.
    """
    n = len(matrix)
    ins = [sum(matrix[u][v] for u in range(n)) for v in range(n)]
    outs = [sum(matrix[v]) for v in range(n)]
    hashes = [hashlib.md5(str((outs[v], ins[v], int(labels[v]))).encode("utf-8")).hexdigest() for v in range(n)]
    preds = [[u for u in range(n) if matrix[u][v]] for v in range(n)]
    succs = [[w for w in range(n) if matrix[v][w]] for v in range(n)]
    for _ in range(n):
        hashes = [hashlib.md5(("".join(sorted(hashes[u] for u in preds[v])) + "|"
                               + "".join(sorted(hashes[w] for w in succs[v])) + "|"
                               + hashes[v]).encode("utf-8")).hexdigest() for v in range(n)]
    return hashlib.md5(str(sorted(hashes)).encode("utf-8")).hexdigest()


def _reach(matrix: Matrix, start: int, forward: bool) -> set[int]:
    n = len(matrix)
    seen, stack = {start}, [start]
    while stack:
        v = stack.pop()
        nxt = (w for w in range(n) if matrix[v][w]) if forward else (u for u in range(n) if matrix[u][v])
        for w in nxt:
            if w not in seen:
                seen.add(w)
                stack.append(w)
    return seen


@dataclass(frozen=True, order=True)
class NB101Cell:
    """An NB101 cell as written (not pruned): ``matrix[u][v] == 1`` is an edge u -> v (u < v)."""

    matrix: Matrix
    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        matrix = tuple(tuple(int(b) for b in row) for row in self.matrix)
        object.__setattr__(self, "matrix", matrix)
        object.__setattr__(self, "ops", tuple(self.ops))
        n = len(matrix)
        if n < 2 or any(len(row) != n for row in matrix):
            raise ArchitectureError(f"an NB101 matrix must be square with at least 2 vertices, got {n} rows of lengths "
                                    f"{[len(r) for r in matrix]}")
        if len(self.ops) != n:
            raise ArchitectureError(f"an NB101 cell with {n} vertices needs {n} operations, got {len(self.ops)}")
        for u in range(n):
            for v in range(n):
                b = matrix[u][v]
                if b not in (0, 1):
                    raise ArchitectureError(f"NB101 matrix entries must be 0 or 1, got {b} at ({u}, {v})")
                if b and v <= u:
                    raise ArchitectureError(f"NB101 matrices are strictly upper-triangular; edge {u}->{v} is not")
        if self.ops[0] != INPUT or self.ops[-1] != OUTPUT:
            raise ArchitectureError(f"an NB101 cell's first operation is {INPUT!r} and its last {OUTPUT!r}, got {list(self.ops)}")
        bad = [op for op in self.ops[1:-1] if op not in OPERATIONS]
        if bad:
            raise ArchitectureError(f"unknown NB101 operation(s) {bad}; intermediate vertices take one of {list(OPERATIONS)}")

    # ------------------------------------------------------------------ structure
    @property
    def num_vertices(self) -> int:
        return len(self.matrix)

    @property
    def num_edges(self) -> int:
        return sum(map(sum, self.matrix))

    @cached_property
    def live(self) -> tuple[int, ...]:
        """Vertices on an input-to-output path (empty when the output is not reachable)."""
        n = self.num_vertices
        both = _reach(self.matrix, 0, True) & _reach(self.matrix, n - 1, False)
        return tuple(sorted(both)) if {0, n - 1} <= both else ()

    @property
    def connected(self) -> bool:
        return bool(self.live)

    def pruned(self) -> "NB101Cell":
        """The cell without the vertices that are not on an input-to-output path (the benchmark's pruning)."""
        live = self.live
        if not live:
            raise ArchitectureError(f"NB101 cell {self} is invalid: its input does not reach its output")
        if len(live) == self.num_vertices:
            return self
        return NB101Cell(tuple(tuple(self.matrix[u][v] for v in live) for u in live), tuple(self.ops[v] for v in live))

    @property
    def is_valid(self) -> bool:
        """The benchmark's validity: connected, and the pruned cell has <= 7 vertices and <= 9 edges."""
        if not self.live:
            return False
        p = self.pruned()
        return p.num_vertices <= MAX_VERTICES and p.num_edges <= MAX_EDGES

    def check(self) -> "NB101Cell":
        if not self.live:
            raise ArchitectureError(f"NB101 cell {self} is invalid: its input does not reach its output")
        p = self.pruned()
        if p.num_vertices > MAX_VERTICES or p.num_edges > MAX_EDGES:
            raise ArchitectureError(f"NB101 cell {self} is outside the benchmark: {p.num_vertices} vertices and "
                                    f"{p.num_edges} edges after pruning (at most {MAX_VERTICES} and {MAX_EDGES})")
        return self

    @property
    def labels(self) -> tuple[int, ...]:
        return (-1,) + tuple(OPERATIONS.index(op) for op in self.ops[1:-1]) + (-2,)

    @cached_property
    def hash(self) -> str:
        """The official key: the graph hash of the pruned cell (ArchitectureError if disconnected)."""
        p = self.pruned()
        return graph_hash(p.matrix, p.labels)

    # ------------------------------------------------------------------ text form
    def __str__(self) -> str:
        return ".".join("".join(map(str, row)) for row in self.matrix) + "|" + ",".join(self.ops)

    @classmethod
    def from_string(cls, text: str) -> "NB101Cell":
        example = "011.001.000|input,conv3x3-bn-relu,output"
        rows, sep, ops = str(text).strip().partition("|")
        if not sep:
            raise ArchitectureError(f"malformed NB101 cell {text!r}: expected '<rows joined by .>|<ops joined by ,>', e.g. {example}")
        matrix = []
        for row in rows.split("."):
            if not row or set(row) - {"0", "1"}:
                raise ArchitectureError(f"malformed NB101 cell {text!r}: row {row!r} must be a 0/1 string; e.g. {example}")
            matrix.append(tuple(int(c) for c in row))
        return cls(tuple(matrix), tuple(ops.split(",")))

    @classmethod
    def from_parents(cls, parents: Sequence[Sequence[int]], ops: Sequence[str]) -> "NB101Cell":
        """A cell from the parents of vertices 1..n-1 and the intermediate operations."""
        n = len(parents) + 1
        m = [[0] * n for _ in range(n)]
        for v, ps in enumerate(parents, start=1):
            for u in ps:
                m[u][v] = 1
        return cls(tuple(map(tuple, m)), (INPUT, *ops, OUTPUT))


def _is_full(matrix: Matrix) -> bool:
    n = len(matrix)
    return len(_reach(matrix, 0, True) & _reach(matrix, n - 1, False)) == n


def _fast_key(matrix: Matrix, labels: Sequence[int]) -> int:
    """The graph hash's refinement with Python tuple hashing instead of MD5 strings (the same partition
    of labelled graphs barring collisions; 64-bit, used only to deduplicate during enumeration)."""
    n = len(matrix)
    ins = [sum(matrix[u][v] for u in range(n)) for v in range(n)]
    outs = [sum(row) for row in matrix]
    h = [hash((outs[v], ins[v], labels[v])) for v in range(n)]
    preds = [[u for u in range(n) if matrix[u][v]] for v in range(n)]
    succs = [[w for w in range(n) if matrix[v][w]] for v in range(n)]
    for _ in range(n):
        h = [hash((tuple(sorted(h[u] for u in preds[v])), tuple(sorted(h[w] for w in succs[v])), h[v])) for v in range(n)]
    return hash(tuple(sorted(h)))


def enumerate_unique_cells(max_vertices: int, max_edges: int = MAX_EDGES, exact: bool = False,
                           official_hash: bool = True) -> Iterator[NB101Cell]:
    """One cell per distinct graph hash among all valid cells with at most ``max_vertices`` vertices.

    Like the benchmark's own generator: every upper-triangular matrix whose vertices all lie on an
    input-to-output path (no pruning needed), at most ``max_edges`` edges, every labelling of its
    intermediate vertices; the first cell met of each hash is yielded (in increasing vertex count).
    ``exact``: only cells with exactly ``max_vertices`` vertices. ``official_hash=False``
    deduplicates with a faster equivalent refinement (``_fast_key``) instead of MD5 strings.
    """
    seen: set = set()
    for n in ([max_vertices] if exact else range(2, max_vertices + 1)):
        spots = [(u, v) for v in range(n) for u in range(v)]
        for bits in itertools.product((0, 1), repeat=len(spots)):
            if sum(bits) > max_edges:
                continue
            m = [[0] * n for _ in range(n)]
            for (u, v), b in zip(spots, bits, strict=True):
                m[u][v] = b
            matrix = tuple(map(tuple, m))
            if not _is_full(matrix):
                continue
            for labelling in itertools.product(range(len(OPERATIONS)), repeat=n - 2):
                labels = (-1, *labelling, -2)
                key = graph_hash(matrix, labels) if official_hash else _fast_key(matrix, labels)
                if key in seen:
                    continue
                seen.add(key)
                yield NB101Cell(matrix, (INPUT, *(OPERATIONS[i] for i in labelling), OUTPUT))


@SPACES.register("nb101")
class NB101Space(SearchSpace[NB101Cell]):
    """The NB101 cells with ``num_vertices`` vertices (including input and output), as a weight-sharing space.

    Decisions: one ``edge u->v`` choice (``absent``/``present``) per vertex pair, then one operation
    per intermediate vertex. An architecture is the n-vertex cell as decided (vertices off every
    input-output path allowed; they are pruned by the network and by ``key``). ``from_decisions``
    raises ArchitectureError for a disconnected cell or one with more than 9 edges after pruning,
    so the default rejection sampling is uniform over valid n-vertex cells.

    ``channels`` is the super-net's switch for the varying width of intermediate vertices (the
    benchmark splits the output's channels among the vertices feeding it): ``split`` (default)
    keeps one set of weights per in-degree of the output vertex, so a weight always serves one
    width ("How to Train Your Super-Net", dynamic channelling: splitting into sub-spaces ranks
    best); ``fixed`` takes the first c channels of a max-width operation; ``shuffle`` a random
    c-channel chunk per training step; ``interpolate`` runs every operation at the maximum width
    and averages neighbouring channels down to c (Yu et al. Sec. 4.5, after Dong & Yang 2019's
    channel-wise interpolation; ``lightning_nas.nn.nb101``). The network reads it from the space (one
    recipe key).

    Relaxation: none. A vertex's width, and the output's concatenation, depend on the discrete
    edges into the output, so no fixed-shape continuous mixture computes every cell (NAS-Bench-1Shot1
    is the relaxable version of this space); DARTS-family strategies report the pair unsupported.
    """

    name = "nb101"
    architecture_type = NB101Cell
    #: 4 vertices: 423 decided cells, 91 distinct (the contract test enumerates it)
    tiny_options = {"num_vertices": 4}

    def __init__(self, num_vertices: int = MAX_VERTICES, channels: str = "split",
                 operations: Optional[Sequence[str]] = None) -> None:
        if isinstance(num_vertices, bool) or not isinstance(num_vertices, int) or not 3 <= num_vertices <= MAX_VERTICES:
            raise ArchitectureError(f"space_options.num_vertices must be an integer in 3..{MAX_VERTICES}, got {num_vertices!r}")
        if channels not in CHANNEL_MODES:
            raise ArchitectureError(f"space_options.channels must be one of {list(CHANNEL_MODES)}, got {channels!r}")
        self.num_vertices = num_vertices
        self.channels = channels
        self.operations = operation_subset(operations, OPERATIONS, "NB101")
        #: (u, v) of every possible edge, column-major: (0,1), (0,2), (1,2), (0,3), ...
        self.edges: tuple[tuple[int, int], ...] = tuple((u, v) for v in range(num_vertices) for u in range(v))

    # ------------------------------------------------------------------ architectures
    @property
    def size(self) -> int:
        """Number of valid n-vertex cells as decided (unpruned; isomorphic cells counted separately)."""
        return VALID_EDGE_PATTERNS[self.num_vertices] * len(self.operations) ** (self.num_vertices - 2)

    def count_valid_edge_patterns(self) -> int:
        """Edge patterns whose cell is valid, by brute force (``VALID_EDGE_PATTERNS`` holds the results)."""
        ops = (self.operations[0],) * (self.num_vertices - 2)
        return sum(self._cell(bits, ops).is_valid for bits in itertools.product((0, 1), repeat=len(self.edges)))

    def check(self, cell: NB101Cell) -> NB101Cell:
        if cell.num_vertices != self.num_vertices:
            raise ArchitectureError(f"{cell} has {cell.num_vertices} vertices; this space's cells have {self.num_vertices}")
        outside = sorted(set(cell.ops[1:-1]) - set(self.operations))
        if outside:
            raise ArchitectureError(f"{cell} uses {outside}, outside this space's operations {list(self.operations)}")
        return cell.check()

    def enumerate(self) -> Iterator[NB101Cell]:
        if self.num_vertices > 5:
            raise NotImplementedError(f"{self.name} with {self.num_vertices} vertices has too many decided cells to list; "
                                      "use unique_cells() for one cell per graph hash")
        for picks in itertools.product(*(range(len(c)) for c in self.decisions)):
            try:
                yield self.from_decisions(tuple((p,) for p in picks))
            except ArchitectureError:
                continue

    def unique_cells(self) -> Iterator[NB101Cell]:
        """One (pruned) cell per graph hash with at most ``num_vertices`` vertices (Yu et al.'s space size)."""
        for cell in enumerate_unique_cells(self.num_vertices):
            if set(cell.ops[1:-1]) <= set(self.operations):
                yield cell

    def canonical(self, cell: NB101Cell) -> NB101Cell:
        """The pruned cell (isomorphic cells still differ; compare ``key``s for the function)."""
        return cell.pruned()

    def key(self, cell: NB101Cell) -> str:
        return cell.hash

    # ------------------------------------------------------------------ the contract
    @cached_property
    def decisions(self) -> tuple[Choice, ...]:
        edges = tuple(Choice(f"edge {u}->{v}", ("absent", "present"), kind="input") for u, v in self.edges)
        ops = tuple(Choice(f"vertex {v}", self.operations) for v in range(1, self.num_vertices - 1))
        return edges + ops

    def _cell(self, bits: Sequence[int], ops: Sequence[str]) -> NB101Cell:
        n = self.num_vertices
        m = [[0] * n for _ in range(n)]
        for (u, v), b in zip(self.edges, bits, strict=True):
            m[u][v] = int(b)
        return NB101Cell(tuple(map(tuple, m)), (INPUT, *ops, OUTPUT))

    def to_decisions(self, cell: NB101Cell) -> Picks:
        self.check(cell)
        edges = tuple((cell.matrix[u][v],) for u, v in self.edges)
        return edges + tuple((self.operations.index(op),) for op in cell.ops[1:-1])

    def from_decisions(self, picks) -> NB101Cell:
        picks = self.check_picks(picks)
        e = len(self.edges)
        cell = self._cell([p[0] for p in picks[:e]], [self.operations[p[0]] for p in picks[e:]])
        return cell.check()

    def subspace(self, cell: NB101Cell) -> int:
        """The ``split`` sub-space of ``cell`` (Yu et al. Sec. 4.5: a fixed number of edges into the output
        fixes every vertex's width), which ``ranking.per_subspace`` ranks within."""
        return self.output_in_degree(cell)

    def output_in_degree(self, cell: NB101Cell) -> int:
        """Edges into the output from intermediate vertices of the pruned cell (the ``split`` sub-space)."""
        p = cell.pruned()
        return sum(p.matrix[v][-1] for v in range(1, p.num_vertices - 1))
