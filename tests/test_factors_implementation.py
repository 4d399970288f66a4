"""Implementation factors of "How to Train Your Super-Net" (Yu et al., Table 1): the OFA kernel, op on
node vs. op on edge, interpolated dynamic channels and per-sub-space scoring. Each test checks what
the factor computes, and that it is refused in one line where it cannot apply."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lightning_nas.benchmarks import Benchmark
from lightning_nas.errors import GroundTruthError, RecipeError
from lightning_nas.nn.darts_cnn import DartsCNNNetwork, count_parameters
from lightning_nas.nn.darts_ops import ElasticDepthwise
from lightning_nas.registry import NETWORKS
from lightning_nas.spaces.darts_cnn import DartsCNNSpace, Genotype
from lightning_nas.strategies import SPOS

X = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))


def _spos(space: str, network: dict, space_options: dict | None = None) -> SPOS:
    return SPOS(space=space, space_options=space_options or {}, network={**NETWORKS.get(space).tiny_options, **network},
                num_classes=3, in_channels=1, seed=7)


# ---------------------------------------------------------------------------------------------- OFA kernel
def _darts(ofa: bool, space: DartsCNNSpace | None = None, seed: int = 0) -> DartsCNNNetwork:
    torch.manual_seed(seed)
    return DartsCNNNetwork(space or DartsCNNSpace(num_nodes=1), num_classes=3, in_channels=1, C=4, layers=3,
                           ofa_kernel=ofa)


def test_ofa_small_kernel_is_the_transformed_centre_of_the_large_one():
    """Hand check (Cai et al. Sec. 3.2): the 3x3 kernel is M applied to the flattened centre 3x3 of
    the 5x5, the same M for every channel; the 3x3 convolution runs with it at padding 1."""
    conv = ElasticDepthwise(2, (3, 5), stride=1, dilation=1)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        conv.conv.weight.copy_(torch.randn(2, 1, 5, 5, generator=gen))
        conv.transforms["3"].copy_(torch.randn(9, 9, generator=gen))
    w, m = conv.conv.weight.detach(), conv.transforms["3"].detach()
    expected = torch.empty(2, 1, 3, 3)
    for c in range(2):
        centre = [float(w[c, 0, 1 + i, 1 + j]) for i in range(3) for j in range(3)]
        for out in range(9):
            expected[c, 0, out // 3, out % 3] = sum(float(m[out, i]) * centre[i] for i in range(9))
    assert torch.allclose(conv.kernel(3), expected, atol=1e-5)
    x = torch.randn(1, 2, 6, 6, generator=gen)
    assert torch.allclose(conv(x, 3), F.conv2d(x, expected, padding=1, groups=2), atol=1e-5)
    assert torch.equal(conv(x, 5), F.conv2d(x, w, padding=2, groups=2))
    fresh = ElasticDepthwise(2, (3, 5), stride=1, dilation=2)  # OFA's identity start: the plain centre
    assert torch.equal(fresh.kernel(3), fresh.conv.weight[:, :, 1:4, 1:4])
    three = ElasticDepthwise(1, (3, 5, 7), stride=1, dilation=1)  # 7 -> 5 -> 3: two matrices in a chain
    with torch.no_grad():
        three.transforms["5"].mul_(2.0)
    assert torch.allclose(three.kernel(3), 2.0 * three.conv.weight[:, :, 2:5, 2:5])


def test_ofa_gradients_reach_the_shared_kernel_from_both_sizes():
    conv = ElasticDepthwise(2, (3, 5), stride=1, dilation=1)
    x = torch.randn(1, 2, 6, 6, generator=torch.Generator().manual_seed(0))
    conv(x, 3).square().sum().backward()
    grad = conv.conv.weight.grad
    assert grad[:, :, 1:4, 1:4].abs().sum() > 0 and conv.transforms["3"].grad.abs().sum() > 0
    rim = grad.clone()
    rim[:, :, 1:4, 1:4] = 0
    assert rim.abs().sum() == 0  # the small size reads the centre only
    conv.zero_grad()
    conv(x, 5).square().sum().backward()
    assert conv.conv.weight.grad[:, :, 0].abs().sum() > 0  # the large size trains the rim too
    assert conv.transforms["3"].grad is None or conv.transforms["3"].grad.abs().sum() == 0
    # in the network: a sep_conv_3x3 path trains its edge's shared sep_conv module
    net = _darts(True)
    arch = Genotype.from_pairs([("sep_conv_3x3", 0), ("sep_conv_3x3", 1)], [("dil_conv_3x3", 0), ("dil_conv_3x3", 1)])
    net(X, arch).sum().backward()
    shared = net.cells[0].edges["0"]["sep_conv"].first.depthwise.conv.weight
    assert shared.grad is not None and shared.grad.abs().sum() > 0


def test_ofa_parameter_count_drops_by_the_smaller_sizes_less_their_matrices():
    """Each edge loses its sep_conv_3x3 and dil_conv_3x3 modules and gains one 9x9 matrix per elastic
    depthwise convolution (two in a separable unit pair, one in a dilated convolution)."""
    plain, ofa = _darts(False), _darts(True)
    small = sum(p.numel() for k, p in plain.named_parameters() if ".sep_conv_3x3." in k or ".dil_conv_3x3." in k)
    edges = sum(len(cell.edges) for cell in plain.cells)
    assert count_parameters(plain) - count_parameters(ofa) == small - edges * 3 * 81
    assert not any(".sep_conv_3x3." in k or ".dil_conv_3x3." in k for k in ofa.state_dict())
    assert any(".sep_conv_3x3." in k for k in plain.state_dict())


def test_ofa_single_path_relaxation_and_standalone_agree_and_are_deterministic():
    net = _darts(True).eval()
    space = net.space
    arch = Genotype.from_pairs([("sep_conv_3x3", 0), ("dil_conv_5x5", 1)], [("sep_conv_5x5", 0), ("dil_conv_3x3", 1)])
    path = net(X, arch)
    assert torch.allclose(net.forward_weighted(X, space.one_hot(arch)), path, atol=1e-6)
    assert torch.equal(net.standalone(arch).eval()(X), path)
    mixed = net.forward_weighted(X, {k: torch.full_like(v, 0.5) for k, v in space.one_hot(arch).items()})
    assert torch.isfinite(mixed).all()
    assert torch.equal(_darts(True).eval()(X, arch), path)  # same seed, same network, same output
    assert not torch.equal(_darts(False).eval()(X, arch), path)


def test_ofa_kernel_is_refused_in_one_line_where_no_family_has_two_sizes():
    space = DartsCNNSpace(num_nodes=1, operations=("skip_connect", "sep_conv_3x3", "dil_conv_5x5"))
    with pytest.raises(RecipeError, match="model.network.ofa_kernel") as error:
        _darts(True, space)
    assert "\n" not in str(error.value)
    with pytest.raises(RecipeError, match="ofa_kernel") as error:  # NB201's network takes no such key
        _spos("nb201", {"ofa_kernel": True})
    assert "\n" not in str(error.value)


# ---------------------------------------------------------------------------------------------- op on node
def _tied_edge_copy(node_net: torch.nn.Module, edge_net: torch.nn.Module, cells: str) -> None:
    """Load a node-owned network's weights into the edge-owned one, every edge a copy of its owner's."""
    state = edge_net.state_dict()
    for i, cell in enumerate(getattr(node_net, cells)):
        if not hasattr(cell, "edges"):
            continue
        owner = cell.owner if hasattr(cell, "owner") else {e: r[next(iter(r))][0] for e, r in cell.routes.items()}
        for e in range(len(owner)):
            for key, value in cell.edges[owner[e] if isinstance(cell.edges, torch.nn.ModuleList)
                                         else str(owner[e])].state_dict().items():
                state[f"{cells}.{i}.edges.{e}.{key}"] = value
    for key, value in node_net.state_dict().items():
        if ".edges." not in key:
            state[key] = value
    edge_net.load_state_dict(state)


def test_ops_on_node_nb201_shares_a_nodes_operations_among_its_edges():
    """A node-owned cell computes what the benchmark cell computes when every edge into a node carries
    the same weights; the parameter count drops from six operation sets per cell to three."""
    from lightning_nas.nn.nb201 import NB201Network
    from lightning_nas.spaces.nb201 import NB201Architecture

    def build(ops_on: str) -> NB201Network:
        torch.manual_seed(0)
        return NB201Network(num_classes=3, in_channels=1, C=4, N=1, ops_on=ops_on).eval()

    node, edge = build("node"), build("edge")
    per_set = [sum(p.numel() for p in layer.edges[0].parameters()) for layer in edge.layers if hasattr(layer, "owner")]
    assert len(per_set) == 3
    assert sum(p.numel() for p in edge.parameters()) - sum(p.numel() for p in node.parameters()) == 3 * sum(per_set)
    assert node.layers[0].owner == [0, 1, 1, 2, 2, 2]
    arch = NB201Architecture(("nor_conv_3x3", "nor_conv_3x3", "nor_conv_3x3", "skip_connect", "nor_conv_1x1",
                              "nor_conv_1x1"))
    path = node(X, arch)
    assert not torch.allclose(edge(X, arch), path)
    _tied_edge_copy(node, edge, "layers")
    assert torch.allclose(edge(X, arch), path, atol=1e-6)
    assert torch.allclose(node.forward_weighted(X, node.space.one_hot(arch)), path, atol=1e-6)
    assert torch.equal(node.standalone(arch).eval()(X), path)
    node.train()(X, arch).sum().backward()
    shared = node.layers[0].edges[1]["nor_conv_3x3"]  # node 2's conv, run by both of its edges
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in shared.parameters() if p.requires_grad)


def test_ops_on_node_darts_shares_per_node_and_stride():
    """DARTS CNN: a node owns one set per stride (reduction cells: stride 2 from the cell inputs, 1 from
    intermediate nodes); tying an edge-owned network's weights the same way gives the same function,
    and the single path, relaxation and stand-alone network agree."""
    space = DartsCNNSpace(num_nodes=2, operations=("skip_connect", "sep_conv_3x3", "avg_pool_3x3"))

    def build(ops_on: str) -> DartsCNNNetwork:
        torch.manual_seed(0)
        return DartsCNNNetwork(space, num_classes=3, in_channels=1, C=4, layers=3, ops_on=ops_on).eval()

    node, edge = build("node"), build("edge")
    assert [sorted(map(int, c.edges)) for c in node.cells] == [[0, 2], [0, 2, 4], [0, 2, 4]]
    arch = Genotype.from_pairs([("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 1), ("sep_conv_3x3", 2)],
                               [("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 2)])
    path = node(X, arch)
    _tied_edge_copy(node, edge, "cells")
    assert torch.allclose(edge(X, arch), path, atol=1e-6)
    assert torch.allclose(node.forward_weighted(X, space.one_hot(arch)), path, atol=1e-6)
    assert torch.equal(node.standalone(arch).eval()(X), path)
    assert count_parameters(node) < count_parameters(edge)


def test_ops_on_is_refused_in_one_line_where_operations_sit_on_nodes_already():
    for space in ("nb101", "nb1shot1"):
        with pytest.raises(RecipeError, match="ops_on") as error:
            _spos(space, {"ops_on": "node"})
        assert "\n" not in str(error.value)


# ---------------------------------------------------------------------------------------------- NB101 channels
def test_interpolate_channels_averages_neighbouring_channels():
    """Hand check: 6 channels to 4 average the windows [0,1], [1,2], [3,4], [4,5] (adaptive pooling
    bounds floor(i*6/4) .. ceil((i+1)*6/4)); equal sizes are left alone; any axis."""
    from lightning_nas.nn.nb101 import interpolate_channels

    t = torch.arange(6.0).reshape(1, 6, 1, 1) ** 2  # 0 1 4 9 16 25
    expected = torch.tensor([0.5, 2.5, 12.5, 20.5]).reshape(1, 4, 1, 1)
    assert torch.equal(interpolate_channels(t, 4), expected)
    assert interpolate_channels(t, 6) is t
    w = torch.arange(6.0).reshape(6, 1, 1, 1).expand(6, 6, 1, 1) ** 2
    assert torch.equal(interpolate_channels(w.transpose(0, 1), 4, dim=1)[0].flatten(), expected.flatten())


def test_interpolated_channels_run_every_path_at_full_width_deterministically():
    from lightning_nas.nn.nb101 import Interpolate, NB101Network
    from lightning_nas.spaces.nb101 import NB101Space

    def net(channels: str) -> NB101Network:
        torch.manual_seed(0)
        return NB101Network(NB101Space(num_vertices=5, channels=channels), num_classes=3, in_channels=1, stem=6,
                            num_stacks=1, cells_per_stack=1)

    interp, fixed = net("interpolate"), net("fixed")
    gen = torch.Generator().manual_seed(3)
    while True:  # a cell whose output is split among several vertices (widths below the maximum)
        cell = interp.space.sample(gen)
        if interp.space.output_in_degree(cell) > 1:
            break
    select = interp._select(cell, 6, 6)
    assert select and all(isinstance(s, Interpolate) and s.width < 6 for s in select.values())
    interp.eval(), fixed.eval()
    out = interp(X, cell)
    assert out.shape == (2, 3) and torch.equal(net("interpolate").eval()(X, cell), out)
    assert not torch.allclose(fixed(X, cell), out)
    interp.train()(X, cell).sum().backward()  # the full-width kernels train through the averages
    grads = [p.grad for n, p in interp.named_parameters() if ".ops." in n and p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    with pytest.raises(ValueError, match="space_options.channels=interpolate"):
        interp.standalone(cell)


class _Truth(Benchmark):
    """A ground truth by graph hash (any value per key, deterministic)."""

    def __init__(self, values: dict[str, float]) -> None:
        self.values = values

    def query(self, key: str) -> float:
        if key not in self.values:
            raise GroundTruthError(f"{key} unknown")
        return self.values[key]


def test_per_subspace_ranking_is_the_mean_of_the_rankings_within_each_subspace(tmp_path):
    """Yu et al.'s baseline-v2: architectures drawn per sub-space (NB101: the output's in-degree), ranked
    within it, the agreement averaged over sub-spaces; the drawn set is seeded and kept between epochs."""
    import csv
    import types

    from callbacks.ranking import WeightSharingRanking
    from lightning_nas.metrics import ranking_agreement

    strategy = _spos("nb101", {}, {"num_vertices": 4})
    space = strategy.space
    gen = torch.Generator().manual_seed(5)
    truth = _Truth({space.key(a): float(torch.rand(1, generator=gen)) * 10 for a in space.enumerate()})
    callback = WeightSharingRanking(num_architectures=6, benchmark=truth, per_subspace=True)
    callback.setup(None, strategy, "fit")
    trainer = types.SimpleNamespace(default_root_dir=str(tmp_path), current_epoch=0, progress_bar_callback=None)
    batches = [(torch.randn(4, 1, 8, 8, generator=gen), torch.randint(0, 3, (4,), generator=gen))]
    metrics = callback._evaluate_subspaces(trainer, strategy, batches, ())
    with open(tmp_path / "ranking" / "subspace_epoch_000.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    groups: dict[str, list[dict]] = {}
    for row in rows:
        assert int(row["subspace"]) == space.subspace(space.parse(row["architecture"]))
        groups.setdefault(row["subspace"], []).append(row)
    assert len(groups) >= 2 and all(len(g) <= 6 for g in groups.values()) and max(len(g) for g in groups.values()) == 6
    keys = [space.key(space.parse(r["architecture"])) for r in rows]
    assert len(set(keys)) == len(keys)  # one function once: spellings of a cell share its ground truth
    # with a sub-space larger than the number of its functions, every function is ranked once and no more
    everything = WeightSharingRanking(num_architectures=200, benchmark=truth, per_subspace=True)
    everything._evaluate_subspaces(types.SimpleNamespace(**{**vars(trainer), "default_root_dir": str(tmp_path / "all")}),
                                   strategy, batches, ())
    with open(tmp_path / "all" / "ranking" / "subspace_epoch_000.csv", newline="") as f:
        keys = [space.key(space.parse(r["architecture"])) for r in csv.DictReader(f)]
    assert sorted(keys) == sorted({space.key(a) for a in space.enumerate()})
    per_group = [ranking_agreement([float(r["ground_truth"]) for r in g], [float(r["supernet_accuracy"]) for r in g])
                 for g in groups.values()]
    taus = [a["sparse_kendall_tau"] for a in per_group if a and a["sparse_kendall_tau"] == a["sparse_kendall_tau"]]
    assert metrics["subspace_sparse_kendall_tau"] == pytest.approx(sum(taus) / len(taus))
    assert metrics["subspace_count"] == len(taus)
    assert callback._evaluate_subspaces(trainer, strategy, batches, ()) == metrics  # same set, same scores


def test_per_subspace_ranking_is_refused_in_one_line_without_subspaces():
    from callbacks.ranking import WeightSharingRanking

    with pytest.raises(RecipeError, match="ranking.per_subspace") as error:
        WeightSharingRanking(per_subspace=True).setup(None, _spos("nb201", {}), "fit")
    assert "\n" not in str(error.value)
