"""NAS-Bench-101 cells: pruning, the official graph hash, enumeration, the n-vertex space and the network."""
from __future__ import annotations


import pytest
import torch

import lightning_nas.nn.nb101  # noqa: F401  (registers the network)
from lightning_nas.errors import ArchitectureError
from lightning_nas.nn.nb101 import NB101Network, vertex_channels
from lightning_nas.spaces.nb101 import (CONV1X1, CONV3X3, MAXPOOL3X3, VALID_EDGE_PATTERNS, NB101Cell, NB101Space,
                                        enumerate_unique_cells, graph_hash)

# A row of the official data (hash, matrix, operations, trainable_parameters = 8,555,530).
OFFICIAL = NB101Cell(((0, 1, 0, 0, 1, 1, 0), (0, 0, 1, 0, 0, 0, 0), (0, 0, 0, 1, 0, 0, 1), (0, 0, 0, 0, 0, 1, 0),
                      (0, 0, 0, 0, 0, 1, 0), (0, 0, 0, 0, 0, 0, 1), (0,) * 7),
                     ("input", CONV3X3, MAXPOOL3X3, CONV3X3, CONV3X3, CONV1X1, "output"))
OFFICIAL_HASH = "00005c142e6f48ac74fdcf73e3439874"
# The Inception-like cell of the benchmark's README (trainable_parameters = 2,694,282 in its query output).
INCEPTION = NB101Cell.from_parents([[0], [0], [0], [3], [0], [1, 2, 4, 5]],
                                   [CONV1X1, CONV3X3, CONV3X3, CONV3X3, MAXPOOL3X3])


def permute(cell: NB101Cell, order: list[int]) -> NB101Cell:
    """Relabel the intermediate vertices (``order`` a topological order keeping input first, output last)."""
    pos = {v: i for i, v in enumerate(order)}
    n = cell.num_vertices
    m = [[0] * n for _ in range(n)]
    for u in range(n):
        for v in range(n):
            if cell.matrix[u][v]:
                m[pos[u]][pos[v]] = 1
    return NB101Cell(tuple(map(tuple, m)), tuple(cell.ops[v] for v in order))


def test_official_hash():
    assert OFFICIAL.hash == OFFICIAL_HASH
    assert NB101Space().key(OFFICIAL) == OFFICIAL_HASH


def test_isomorphic_cells_hash_equal_and_others_differ():
    # vertices 1, 2 and 5 of INCEPTION only read the input and feed the output: reordering them is an isomorphism
    a = permute(INCEPTION, [0, 2, 1, 3, 4, 5, 6])
    assert all(a.matrix[u][v] == 0 for u in range(7) for v in range(u + 1))
    assert a != INCEPTION and a.hash == INCEPTION.hash
    # swapping two operations changes the function
    ops = list(INCEPTION.ops)
    ops[1], ops[4] = ops[4], ops[1]  # the 1x1 branch and the second conv of the 3x3 chain
    assert NB101Cell(INCEPTION.matrix, tuple(ops)).hash != INCEPTION.hash
    # one more edge differs
    m = [list(r) for r in INCEPTION.matrix]
    m[1][2] = 1
    assert NB101Cell(tuple(map(tuple, m)), INCEPTION.ops).hash != INCEPTION.hash


def test_pruning():
    # vertex 2 is a dead end (no path to the output); vertex 3 is unreachable from the input
    cell = NB101Cell(((0, 1, 1, 0, 0), (0, 0, 0, 0, 1), (0, 0, 0, 0, 0), (0, 0, 0, 0, 1), (0, 0, 0, 0, 0)),
                     ("input", CONV3X3, CONV1X1, MAXPOOL3X3, "output"))
    pruned = cell.pruned()
    assert pruned == NB101Cell(((0, 1, 0), (0, 0, 1), (0, 0, 0)), ("input", CONV3X3, "output"))
    assert cell.hash == pruned.hash == graph_hash(pruned.matrix, pruned.labels)
    assert cell.live == (0, 1, 4)
    disconnected = NB101Cell(((0, 1, 0), (0, 0, 0), (0, 0, 0)), ("input", CONV3X3, "output"))
    assert not disconnected.is_valid
    with pytest.raises(ArchitectureError, match="does not reach"):
        _ = disconnected.hash


def test_validity_and_text_form():
    dense = NB101Cell(tuple(tuple(int(v > u) for v in range(6)) for u in range(6)), ("input",) + (CONV3X3,) * 4 + ("output",))
    assert dense.num_edges == 15 and not dense.is_valid
    with pytest.raises(ArchitectureError, match="9"):
        dense.check()
    for cell in (OFFICIAL, INCEPTION):
        assert NB101Cell.from_string(str(cell)) == cell
    with pytest.raises(ArchitectureError, match="upper-triangular"):
        NB101Cell(((0, 0), (1, 0)), ("input", "output"))
    with pytest.raises(ArchitectureError, match="unknown"):
        NB101Cell.from_string("011.001.000|input,conv5x5,output")


def test_enumeration_counts():
    """Cumulative unique cells (Yu et al. 2020, Table 6: n=4 (91), n=5 (2.5K))."""
    assert len(list(enumerate_unique_cells(3))) == 7  # in->out, plus in->v->out with and without in->out, 3 ops
    assert len(list(enumerate_unique_cells(4))) == 91
    cells5 = list(enumerate_unique_cells(5))
    assert len(cells5) == 2532 == len({c.hash for c in cells5})
    assert len(list(enumerate_unique_cells(5, official_hash=False))) == 2532


def test_space_sizes():
    for n in (3, 4, 5):
        assert NB101Space(n).count_valid_edge_patterns() == VALID_EDGE_PATTERNS[n]
    assert NB101Space(3).size == 15 and NB101Space(7).size == 1538083 * 3 ** 5
    assert NB101Space(4, operations=[CONV3X3]).size == 47


def test_space_decisions_round_trip_and_sampling():
    space = NB101Space(num_vertices=5)
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        cell = space.sample(g)
        assert cell.is_valid and cell.num_vertices == 5
        assert space.from_decisions(space.to_decisions(cell)) == cell
        assert space.parse(str(cell)) == cell
    enumerated = list(space.enumerate())
    assert len(enumerated) == space.size == len(set(enumerated))
    assert {space.key(c) for c in enumerated} == {c.hash for c in space.unique_cells()}
    with pytest.raises(ArchitectureError):  # no edge at all: disconnected
        space.from_decisions(tuple((0,) for _ in space.edges) + ((0,),) * 3)


def _count(net):
    return sum(p.numel() for p in net.parameters())


def test_parameter_counts_derived_by_hand():
    space = NB101Space()
    # input -> output only: every cell is one 1x1 projection (conv c_in*c_out + BN 2*c_out)
    only_projection = NB101Cell(((0, 1), (0, 0)), ("input", "output"))
    stem = 3 * 128 * 9 + 2 * 128
    proj = lambda a, b: a * b + 2 * b  # noqa: E731
    conv3 = lambda c: c * c * 9 + 2 * c  # noqa: E731
    classifier = 512 * 10 + 10
    expected = stem + 3 * proj(128, 128) + proj(128, 256) + 2 * proj(256, 256) + proj(256, 512) + 2 * proj(512, 512) + classifier
    assert _count(NB101Network(space, arch=only_projection)) == expected == 882570
    # input -> conv3x3 -> output: projection to the vertex, then the 3x3 conv
    chain = NB101Cell(((0, 1, 0), (0, 0, 1), (0, 0, 0)), ("input", CONV3X3, "output"))
    expected = (stem + 3 * (proj(128, 128) + conv3(128)) + proj(128, 256) + conv3(256) + 2 * (proj(256, 256) + conv3(256))
                + proj(256, 512) + conv3(512) + 2 * (proj(512, 512) + conv3(512)) + classifier)
    assert _count(NB101Network(space, arch=chain)) == expected == 10177674
    # a max-pool vertex has no parameters of its own; dead-end vertices build nothing
    pooled = NB101Cell(((0, 1, 1, 0), (0, 0, 0, 1), (0, 0, 0, 0), (0, 0, 0, 0)), ("input", MAXPOOL3X3, CONV3X3, "output"))
    assert _count(NB101Network(space, arch=pooled)) == expected - sum(conv3(c) * k for c, k in ((128, 3), (256, 3), (512, 3)))


def test_parameter_counts_of_official_cells():
    space = NB101Space()
    assert _count(NB101Network(space, arch=OFFICIAL)) == 8555530
    assert _count(NB101Network(space, arch=INCEPTION)) == 2694282


def test_vertex_channels_rule():
    # three vertices feed the output: 128 = 43 + 43 + 42; vertex 1 feeds vertex 2 only: max of its successors
    m = ((0, 1, 0, 1, 1, 0), (0, 0, 1, 0, 0, 0), (0, 0, 0, 0, 0, 1), (0, 0, 0, 0, 0, 1), (0, 0, 0, 0, 0, 1), (0,) * 6)
    assert vertex_channels(64, 128, m) == [64, 43, 43, 43, 42, 128]


@pytest.mark.parametrize("channels", ["split", "fixed", "shuffle"])
def test_supernet_path_equals_standalone(channels):
    torch.manual_seed(0)
    space = NB101Space(num_vertices=5, channels=channels)
    net = NB101Network(space, num_classes=10, in_channels=1, stem=8, num_stacks=2, cells_per_stack=1)
    x = torch.randn(4, 1, 8, 8)
    g = torch.Generator().manual_seed(1)
    net.train()
    for _ in range(3):  # a few training steps move BN statistics of the sampled paths
        net(x, space.sample(g)).sum().backward()
    net.eval()
    for _ in range(10):
        cell = space.sample(g)
        alone = net.standalone(cell).eval()
        with torch.no_grad():
            assert torch.equal(net(x, cell), alone(x))
        assert _count(alone) <= _count(net)
