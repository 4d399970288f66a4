"""DARTS CNN networks: super-net protocol invariants, evaluation network, parameter counts,
auxiliary head, drop-path and its schedule, small-image fixtures."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from lightning_nas.nn.base import ActiveSet
from lightning_nas.nn.darts_cnn import (DartsCNNNetwork, count_parameters, drop_path_schedule, loose_ends, op_keys)
from lightning_nas.registry import NETWORKS, SPACES
from lightning_nas.spaces.darts_cnn import OPERATIONS, PUBLISHED, DartsCNNSpace

SPACE = DartsCNNSpace()
EVAL = dict(C=36, layers=20, auxiliary=True, affine=True, pool_bn=False)
#: DARTS-macro parameter counts (C=36, 20 cells), without / with the auxiliary head.
EXPECTED = {"DARTS_V1": (3_169_414, 3_645_840), "DARTS_V2": (3_349_342, 3_825_768), "NASNet": (3_830_950, 4_288_944),
            "AmoebaNet": (3_145_078, 3_603_072), "ENAS": (3_859_894, 4_317_888), "NAO": (2_921_302, 3_379_296)}


def small(**options) -> DartsCNNNetwork:
    torch.manual_seed(0)
    return DartsCNNNetwork(SPACE, **{"C": 8, "layers": 5, **options})


def images(n: int = 2, size: int = 8) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(3))


def test_registered_under_the_space_name():
    assert NETWORKS.get("darts_cnn") is DartsCNNNetwork and SPACES.get("darts_cnn") is DartsCNNSpace
    assert DartsCNNNetwork.supports_partial_channels


def test_search_supernet_defaults_are_darts():
    net = DartsCNNNetwork()
    assert net.config["C"] == 16 and net.config["layers"] == 8 and net.reductions == [2, 5]
    assert len(net.cells[0].edges) == 14 and set(net.cells[0].edges["0"]) == set(OPERATIONS[1:])
    bns = [m for m in net.cells.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and not any(m.affine for m in bns)
    assert isinstance(net.cells[0].edges["0"]["max_pool_3x3"], nn.Sequential)  # pool + BN(affine=False)


@pytest.mark.parametrize("seed", range(3))
def test_one_hot_and_standalone_are_bit_exact(seed):
    net = small().eval()
    x = images()
    arch = SPACE.sample(torch.Generator().manual_seed(seed))
    y = net(x, arch)
    assert torch.equal(y, net.forward_weighted(x, SPACE.one_hot(arch)))
    ops_only = {k: v for k, v in SPACE.one_hot(arch).items() if k.endswith("_ops")}
    assert torch.equal(y, net.forward_weighted(x, ops_only))
    alone = net.standalone(arch).eval()
    assert set(alone.state_dict()) < set(net.state_dict())
    assert torch.equal(y, alone(x))


def test_standalone_of_published_cell_matches_supernet_path():
    net = small().eval()
    x = images()
    v2 = PUBLISHED["DARTS_V2"]
    assert torch.equal(net(x, v2), net.standalone(v2).eval()(x))


def test_supernet_refuses_cells_outside_the_space():
    with pytest.raises(Exception, match="5 nodes"):
        small()(images(), PUBLISHED["NASNet"])


def test_gdas_active_option_and_edge_weights():
    net = small().eval()
    x = images()
    arch = SPACE.sample(torch.Generator().manual_seed(5))
    one_hot = SPACE.one_hot(arch)
    active = ActiveSet({g: w.argmax(-1, keepdim=True) for g, w in one_hot.items() if g.endswith("_ops")})
    assert torch.equal(net(x, arch), net.forward_weighted(x, one_hot, active))
    # every edge 'none' -> zeros flow through, no crash
    for passthrough in (False, True):  # True: GDAS' reference estimator adds the other weights as constants
        none = ActiveSet({g: torch.zeros(14, 1, dtype=torch.long) for g in ("normal_ops", "reduce_ops")}, passthrough)
        assert net.forward_weighted(x, one_hot, none).shape == (2, 10)


def test_relaxed_gradients_reach_architecture_weights():
    net = small().train()
    raw = {g.name: torch.zeros(g.shape, requires_grad=True) for g in SPACE.relaxation}
    weights = {g.name: g.normalise(raw[g.name]) for g in SPACE.relaxation}
    net.forward_weighted(images(4), weights).sum().backward()
    assert all(raw[name].grad is not None and raw[name].grad.abs().sum() > 0 for name in raw)


def test_partial_channels_supernet():
    net = small(partial_channels=4)
    assert net.cells[0].edges["0"]["sep_conv_3x3"][0][1].in_channels == 2
    weights = {g.name: g.normalise(torch.randn(g.shape)) for g in SPACE.relaxation}
    out = net.forward_weighted(images(), weights)
    out.sum().backward()
    arch = SPACE.sample(torch.Generator().manual_seed(0))
    assert net.eval()(images(), arch).shape == (2, 10)
    with pytest.raises(ValueError, match="partial"):
        net.standalone(arch)
    with pytest.raises(ValueError, match="divide"):
        small(partial_channels=3)


def test_loose_end_output_single_path_only():
    net = small(output="loose_ends").eval()
    arch = SPACE.sample(torch.Generator().manual_seed(1))
    x = images()
    y = net(x, arch)
    assert torch.equal(y, net.standalone(arch).eval()(x))
    assert net.cells[0].multiplier == 1 and net.cells[0].combine[1].in_channels == 4 * 8
    with pytest.raises(ValueError, match="loose_ends"):
        net.forward_weighted(x, SPACE.one_hot(arch))
    # the loose ends of DARTS V2's normal cell: node 2 feeds node 5, nodes 3-5 feed nobody
    assert loose_ends(PUBLISHED["DARTS_V2"], "normal") == (3, 4, 5)


@pytest.mark.parametrize("name", sorted(set(PUBLISHED) - {"DARTS"}))
def test_every_published_cell_builds_and_runs(name):
    g = PUBLISHED[name]
    net = DartsCNNNetwork(SPACE, arch=g, C=8, layers=5, auxiliary=True, affine=True, pool_bn=False)
    normal = net.cells[0]
    built = sum(len(ops) for ops in normal.edges.values())
    assert built == 2 * len(g.normal)  # one module per (node, input) pair of the genotype
    assert normal.multiplier == len(g.normal_concat)
    net.train()
    logits, aux = net.forward_with_auxiliary(images(4, 32))
    assert logits.shape == (4, 10) and aux.shape == (4, 10)
    (logits.sum() + aux.sum()).backward()


def test_repeated_operations_get_their_own_modules():
    assert op_keys(["avg_pool_3x3", "avg_pool_3x3", "sep_conv_3x3"]) == ["avg_pool_3x3", "avg_pool_3x3_2", "sep_conv_3x3"]
    net = DartsCNNNetwork(SPACE, arch=PUBLISHED["NASNet"], C=8, layers=3)
    node5 = net.cells[0].edges[str(9)]  # NASNet normal node 5 pools input 0 twice
    assert set(node5) == {"avg_pool_3x3", "avg_pool_3x3_2"}


def test_parameter_count_of_darts_v2_by_hand():
    """DARTS V2, C=36, 20 cells; every BN has 2C parameters, a factorized reduction as many as a 1x1 conv.
    Normal cell: 5 sep 3x3 (2 (C^2 + 9C + 2C) each) + 1 dil 3x3 (C^2 + 9C + 2C) = 11 (C^2 + 11C);
    reduction cell: pools and identities only. Preprocessing: c_in C + 2C per input."""
    def pre(c_in, c):
        return c_in * c + 2 * c

    def normal(c_pp, c_p, c):
        return pre(c_pp, c) + pre(c_p, c) + 11 * (c * c + 11 * c)

    total = 3 * 108 * 9 + 2 * 108                                                 # stem
    total += normal(108, 108, 36) + normal(108, 144, 36) + 4 * normal(144, 144, 36)
    total += 2 * pre(144, 72)                                                      # reduction 1
    total += normal(144, 288, 72) + 5 * normal(288, 288, 72)
    total += 2 * pre(288, 144)                                                     # reduction 2
    total += normal(288, 576, 144) + 5 * normal(576, 576, 144)
    total += 576 * 10 + 10                                                         # classifier
    aux = 576 * 128 + 2 * 128 + 128 * 768 * 4 + 2 * 768 + 768 * 10 + 10
    assert total == 3_349_342 and total + aux == 3_825_768
    net = DartsCNNNetwork(SPACE, arch=PUBLISHED["DARTS_V2"], **EVAL)
    assert count_parameters(net, auxiliary=False) == total
    assert count_parameters(net) == total + aux


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_parameter_counts_of_published_cells(name):
    net = DartsCNNNetwork(SPACE, arch=PUBLISHED[name], **EVAL)
    assert (count_parameters(net, auxiliary=False), count_parameters(net)) == EXPECTED[name]


def test_evaluation_layout():
    net = DartsCNNNetwork(SPACE, arch=PUBLISHED["DARTS_V2"], **EVAL)
    assert net.reductions == [6, 13] and net.auxiliary_index == 13
    assert net.auxiliary_head.features[0].in_channels == 576


def test_auxiliary_logits_only_in_training():
    net = DartsCNNNetwork(SPACE, arch=PUBLISHED["DARTS_V2"], C=8, layers=5, auxiliary=True, affine=True, pool_bn=False)
    x = images(2, 32)
    net.train()
    logits, aux = net.forward_with_auxiliary(x)
    assert aux is not None and aux.shape == logits.shape
    net.eval()
    logits, aux = net.forward_with_auxiliary(x)
    assert aux is None
    assert torch.equal(net(x), logits)
    without = DartsCNNNetwork(SPACE, arch=PUBLISHED["DARTS_V2"], C=8, layers=5, affine=True, pool_bn=False).train()
    assert without.forward_with_auxiliary(x)[1] is None and without.auxiliary_head is None


def test_drop_path_schedule():
    assert drop_path_schedule(0, 600, 0.2) == 0.0
    assert drop_path_schedule(300, 600, 0.2) == pytest.approx(0.1)
    assert drop_path_schedule(599, 600, 0.2) == pytest.approx(0.2 * 599 / 600)
    assert drop_path_schedule(700, 600, 0.2) == pytest.approx(0.2)
    values = [drop_path_schedule(e, 10, 0.2) for e in range(10)]
    assert values == sorted(values) and len(set(values)) == 10
    net = DartsCNNNetwork(SPACE, arch=PUBLISHED["DARTS_V2"], C=8, layers=3, affine=True, pool_bn=False, drop_path_prob=0.2)
    assert net.current_drop_path == 0.0
    assert net.update_drop_path(5, 10) == pytest.approx(0.1) and net.current_drop_path == pytest.approx(0.1)
    with pytest.raises(ValueError):
        net.set_drop_path(1.0)


def test_drop_path_applies_in_training_only():
    net = DartsCNNNetwork(SPACE, arch=PUBLISHED["DARTS_V2"], C=8, layers=3, affine=True, pool_bn=False).eval()
    x = images(8)
    reference = net(x)
    net.set_drop_path(0.5)
    assert torch.equal(net(x), reference)  # eval: no drop-path
    net.train()
    torch.manual_seed(0)
    a = net(x)
    torch.manual_seed(1)
    b = net(x)
    assert not torch.equal(a, b)            # random per-sample masks
    net.set_drop_path(0.0)
    torch.manual_seed(0)
    c = net(x)
    torch.manual_seed(1)
    assert torch.equal(c, net(x))           # deterministic without it


def test_drop_path_spares_identities(monkeypatch):
    """DARTS V2, 3 cells (normal, reduce, reduce): drop-path on every operation output except identities:
    6 of the normal cell's 8 (2 identities), 5 of each reduction cell's 8 (3 identities from node 2)."""
    import lightning_nas.nn.darts_cnn as module

    calls = []
    real = module.drop_path
    monkeypatch.setattr(module, "drop_path", lambda x, p: calls.append(p) or real(x, p))
    net = DartsCNNNetwork(SPACE, arch=PUBLISHED["DARTS_V2"], C=8, layers=3, affine=True, pool_bn=False).train()
    net(images())
    assert calls == []
    net.set_drop_path(0.3)
    net(images())
    assert calls == [0.3] * 16


@pytest.mark.parametrize("size", [8, 16])
def test_small_images_and_tiny_networks(size):
    net = DartsCNNNetwork(DartsCNNSpace(num_nodes=2), C=4, layers=3, auxiliary=True, num_classes=10)
    arch = net.space.sample(torch.Generator().manual_seed(0))
    net.train()
    logits, aux = net.forward_with_auxiliary(images(3, size), arch)
    assert logits.shape == (3, 10) and aux.shape == (3, 10)
    alone = DartsCNNNetwork(DartsCNNSpace(num_nodes=2), arch=arch, C=4, layers=2, in_channels=1)
    assert alone.eval()(torch.randn(2, 1, size, size)).shape == (2, 10)


def test_odd_sizes_reduce_consistently():
    net = DartsCNNNetwork(SPACE, arch=PUBLISHED["DARTS_V2"], C=4, layers=3, affine=True, pool_bn=False).eval()
    assert net(torch.randn(2, 3, 7, 7)).shape == (2, 10)


def test_bf16_autocast_and_channels_last_run():
    net = DartsCNNNetwork(SPACE, arch=PUBLISHED["DARTS_V2"], C=8, layers=3, affine=True, pool_bn=False).eval()
    x = images(2, 16)
    reference = net(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = net(x)
    assert low.dtype == torch.bfloat16 and torch.allclose(low.float(), reference, atol=0.2, rtol=0.1)
    net = net.to(memory_format=torch.channels_last)
    assert torch.allclose(net(x.to(memory_format=torch.channels_last)), reference, atol=1e-4)


def test_standalone_refuses_other_architectures():
    v1, v2 = PUBLISHED["DARTS_V1"], PUBLISHED["DARTS_V2"]
    net = DartsCNNNetwork(SPACE, arch=v2, C=4, layers=3)
    with pytest.raises(ValueError, match="not"):
        net(images(), v1)
    with pytest.raises(ValueError, match="relaxation"):
        net.forward_weighted(images(), SPACE.one_hot(v2))


def test_speed_benchmark_runs(tmp_path):
    """speed/eval_network_speed.py at toy size: every CPU variant but compile reports a ratio."""
    import importlib.util

    from conftest import ROOT

    spec = importlib.util.spec_from_file_location("eval_network_speed", ROOT / "speed" / "eval_network_speed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    report = module.main(["--C", "4", "--layers", "3", "--image", "8", "--batch", "2", "--steps", "1", "--rounds", "1",
                          "--variants", "fp32,bf16,channels_last,channels_last_bf16,fp16", "--json", str(tmp_path / "r.json")])
    results = report["results"]
    assert set(results) == {"fp32", "bf16", "channels_last", "channels_last_bf16"}  # fp16 is GPU-only
    assert results["fp32"]["relative_to_fp32"] == 1.0 and all(r["images_per_s"] > 0 for r in results.values())
    assert (tmp_path / "r.json").is_file()
