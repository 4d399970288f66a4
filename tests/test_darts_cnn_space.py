"""DARTS CNN space: genotypes, text form, decisions, sampling, relaxation and decoding."""
from __future__ import annotations

from collections import Counter

import pytest
import torch

from lightning_nas.spaces.base import ArchitectureError
from lightning_nas.spaces.darts_cnn import (CELL_OPERATIONS, OPERATIONS, PUBLISHED, DartsCNNSpace, Genotype,
                                            cell_edges, edge_index, genotype, node_segments)

SPACE = DartsCNNSpace()


def test_edges_and_segments():
    edges = cell_edges(4)
    assert len(edges) == 14 and edges[:3] == ((2, 0), (2, 1), (3, 0))
    assert all(edge_index(t, s) == e for e, (t, s) in enumerate(edges))
    assert node_segments(4) == ((0, 2), (2, 5), (5, 9), (9, 14))


def test_size_is_the_known_darts_count():
    per_cell = 1 * 3 * 6 * 10 * 7 ** 8  # C(i, 2) input pairs times 7^2 op pairs per node
    assert SPACE.size == per_cell ** 2
    assert 1e18 < SPACE.size < 1.2e18


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_text_round_trips(name):
    g = PUBLISHED[name]
    assert Genotype.from_string(str(g)) == g
    assert SPACE.parse(str(g)) == g
    assert SPACE.parse(name) == g and SPACE.parse(name.lower()) == g
    assert hash(SPACE.parse(str(g))) == hash(g)


def test_which_published_cells_are_in_the_space():
    inside = {name for name, g in PUBLISHED.items() if SPACE.contains(g)}
    assert inside == {"DARTS", "DARTS_V1", "DARTS_V2"}
    assert genotype("darts") == PUBLISHED["DARTS_V2"]


def test_darts_v2_text_form():
    assert str(PUBLISHED["DARTS_V2"]) == (
        "normal=|sep_conv_3x3~0|sep_conv_3x3~1|+|sep_conv_3x3~0|sep_conv_3x3~1|+|skip_connect~0|sep_conv_3x3~1|"
        "+|skip_connect~0|dil_conv_3x3~2| reduce=|max_pool_3x3~0|max_pool_3x3~1|+|max_pool_3x3~1|skip_connect~2|"
        "+|max_pool_3x3~0|skip_connect~2|+|max_pool_3x3~1|skip_connect~2|")
    assert str(PUBLISHED["NAO"]).startswith("normal[3,5,6]=") and " reduce[4,5,6]=" in str(PUBLISHED["NAO"])


def test_node_order_does_not_matter():
    a = Genotype.from_pairs([("sep_conv_3x3", 1), ("skip_connect", 0)] * 4, [("max_pool_3x3", 0), ("avg_pool_3x3", 1)] * 4)
    b = Genotype.from_pairs([("skip_connect", 0), ("sep_conv_3x3", 1)] * 4, [("avg_pool_3x3", 1), ("max_pool_3x3", 0)] * 4)
    assert a == b and str(a) == str(b)


@pytest.mark.parametrize("text, why", [
    ("", "cells"),
    ("normal=|sep_conv_3x3~0|sep_conv_3x3~1|", "cells"),
    ("normal=|conv_9x9~0|sep_conv_3x3~1| reduce=|max_pool_3x3~0|max_pool_3x3~1|", "unknown operation"),
    ("normal=|sep_conv_3x3~0|sep_conv_3x3~2| reduce=|max_pool_3x3~0|max_pool_3x3~1|", "must read nodes 0..1"),
    ("normal=|sep_conv_3x3~0| reduce=|max_pool_3x3~0|max_pool_3x3~1|", "exactly 2"),
    ("normal[1]=|sep_conv_3x3~0|sep_conv_3x3~1| reduce=|max_pool_3x3~0|max_pool_3x3~1|", "intermediate nodes"),
    ("reduce=|sep_conv_3x3~0|sep_conv_3x3~1| normal=|max_pool_3x3~0|max_pool_3x3~1|", "must read 'normal"),
    ("NOT_A_CELL", "unknown published"),
])
def test_malformed_text_is_one_line_error(text, why):
    with pytest.raises(ArchitectureError, match=why) as info:
        SPACE.parse(text)
    assert "\n" not in str(info.value)


def test_space_membership_errors_name_the_reason():
    with pytest.raises(ArchitectureError, match="reads node 1 twice"):
        SPACE.to_decisions(Genotype.from_pairs(
            [("sep_conv_3x3", 1), ("skip_connect", 1)] + [("sep_conv_3x3", 0), ("sep_conv_3x3", 1)] * 3,
            [("max_pool_3x3", 0), ("max_pool_3x3", 1)] * 4))
    with pytest.raises(ArchitectureError, match="5 nodes"):
        SPACE.one_hot(PUBLISHED["NASNet"])
    extra_op = Genotype.from_pairs([("sep_conv_3x3", 0), ("sep_conv_7x7", 1)] * 4,
                                   [("max_pool_3x3", 0), ("max_pool_3x3", 1)] * 4)
    with pytest.raises(ArchitectureError, match="outside"):
        SPACE.to_decisions(extra_op)


def test_decisions_shape_and_round_trip():
    choices = SPACE.decisions
    assert len(choices) == 24
    assert choices[0].label == "normal node 2 inputs" and choices[0].pick == 2 and choices[0].options == ("0", "1")
    assert choices[9].options == ("0", "1", "2", "3", "4") and choices[10].options == CELL_OPERATIONS
    assert "none" not in choices[1].options
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        arch = SPACE.sample(gen)
        picks = SPACE.to_decisions(arch)
        assert SPACE.from_decisions(picks) == arch
        assert SPACE.parse(str(arch)) == arch
    v2 = PUBLISHED["DARTS_V2"]
    assert SPACE.from_decisions(SPACE.to_decisions(v2)) == v2
    sep3 = CELL_OPERATIONS.index("sep_conv_3x3")
    assert SPACE.to_decisions(v2)[:3] == ((0, 1), (sep3,), (sep3,))


def test_bad_picks_are_refused():
    picks = list(SPACE.to_decisions(PUBLISHED["DARTS_V2"]))
    picks[0] = (0, 0)
    with pytest.raises(ArchitectureError, match="normal node 2 inputs"):
        SPACE.from_decisions(picks)


def test_uniform_sampling_chi_square():
    """Node 5's input pair (10 options) and its op (7) are uniform; Pearson chi-square below the 0.1% quantile."""
    gen = torch.Generator().manual_seed(1)
    n = 2100
    pairs, ops = Counter(), Counter()
    for _ in range(n):
        node = SPACE.sample(gen).normal[3]
        pairs[(node[0][1], node[1][1])] += 1
        ops[node[0][0]] += 1
    assert len(pairs) == 10 and len(ops) == 7
    chi_pairs = sum((c - n / 10) ** 2 / (n / 10) for c in pairs.values())
    chi_ops = sum((c - n / 7) ** 2 / (n / 7) for c in ops.values())
    assert chi_pairs < 27.88 and chi_ops < 22.46  # chi2 0.999 quantiles for 9 and 6 degrees of freedom


def test_relaxation_groups():
    groups = {g.name: g for g in SPACE.relaxation}
    assert groups["normal_ops"].shape == (14, 8) and groups["reduce_ops"].shape == (14, 8)
    assert groups["normal_edges"].segments == ((0, 2), (2, 5), (5, 9), (9, 14))
    assert groups["normal_edges"].edge_normalisation and not groups["normal_ops"].edge_normalisation
    assert SPACE.operations == OPERATIONS and OPERATIONS[0] == "none"


def test_one_hot_decodes_back():
    gen = torch.Generator().manual_seed(2)
    for arch in [PUBLISHED["DARTS_V1"], PUBLISHED["DARTS_V2"]] + [SPACE.sample(gen) for _ in range(20)]:
        weights = SPACE.one_hot(arch)
        assert SPACE.decode(weights) == arch
        assert SPACE.decode({k: v for k, v in weights.items() if k.endswith("_ops")}) == arch
        assert torch.all(weights["normal_ops"].sum(-1) == 1)


def test_decode_follows_darts_rule():
    """Node 2 keeps both edges; node 3 the two edges with the strongest non-none weight (a large
    `none` weight does not count); the op is the arg-max without `none`."""
    ops = torch.full((14, 8), 0.01)
    ops[0, OPERATIONS.index("sep_conv_5x5")] = 0.3
    ops[1, OPERATIONS.index("max_pool_3x3")] = 0.2
    ops[2, 0] = 0.99                                        # 3<-0: `none` dominates, strongest real op tiny
    ops[3, OPERATIONS.index("dil_conv_3x3")] = 0.5          # 3<-1
    ops[4, OPERATIONS.index("skip_connect")] = 0.4          # 3<-2
    weights = {"normal_ops": ops, "reduce_ops": ops.clone()}
    arch = SPACE.decode(weights)
    assert arch.normal[0] == (("sep_conv_5x5", 0), ("max_pool_3x3", 1))
    assert arch.normal[1] == (("dil_conv_3x3", 1), ("skip_connect", 2))
    # PC-DARTS: edge weights multiply the strengths: 3<-0 now wins over 3<-2
    edges = torch.ones(14)
    edges[4] = 0.01
    ops[2, OPERATIONS.index("avg_pool_3x3")] = 0.05
    arch = SPACE.decode({"normal_ops": ops, "reduce_ops": ops, "normal_edges": edges, "reduce_edges": torch.ones(14)})
    assert arch.normal[1] == (("avg_pool_3x3", 0), ("dil_conv_3x3", 1))
    assert arch.reduce[1] == (("dil_conv_3x3", 1), ("skip_connect", 2))


def test_decode_checks_shapes():
    with pytest.raises(ArchitectureError, match="normal_ops"):
        SPACE.decode({"normal_ops": torch.zeros(6, 5), "reduce_ops": torch.zeros(14, 8)})


def test_smaller_spaces_for_fixtures():
    space = DartsCNNSpace(num_nodes=2)
    assert len(space.decisions) == 12 and space.relaxation[0].shape == (5, 8)
    assert space.size == (3 * 49 * 49) ** 2
    arch = space.sample(torch.Generator().manual_seed(0))
    assert space.decode(space.one_hot(arch)) == arch


def test_operation_subset_and_enumeration():
    space = DartsCNNSpace(**DartsCNNSpace.tiny_options)
    assert space.operations == ("none", "skip_connect", "sep_conv_3x3")
    archs = list(space.enumerate())
    assert len(archs) == len(set(archs)) == space.size == 16
    assert space.relaxation[0].shape == (2, 3)
    for arch in archs:
        assert space.decode(space.one_hot(arch)) == arch and space.from_decisions(space.to_decisions(arch)) == arch
    outside = Genotype.from_pairs([("max_pool_3x3", 0), ("skip_connect", 1)], [("skip_connect", 0), ("skip_connect", 1)])
    with pytest.raises(ArchitectureError, match="outside"):
        space.to_decisions(outside)
    with pytest.raises(ArchitectureError, match="distinct operations"):
        DartsCNNSpace(operations=("conv_9x9",))
