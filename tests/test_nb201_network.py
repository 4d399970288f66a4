"""The NB201 network: benchmark parameter counts, super-net path == stand-alone net, cost of ``none``."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from lightning_nas.nn.nb201 import NB201Cell, NB201Network
from lightning_nas.spaces.nb201 import EDGES, OPERATIONS, NB201Architecture, NB201Space


def _count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("text, params", [
    ("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", 73_306),  # the benchmark's smallest
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
     1_531_546),  # the benchmark's largest
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
     1_288_506),  # measured
])
def test_standalone_parameter_counts_match_benchmark(text, params):
    net = NB201Network(num_classes=10, C=16, N=5, arch=NB201Architecture.from_string(text))
    assert _count(net) == params


def test_parameter_count_is_additive_over_edges():
    """Each 3x3 conv edge costs 9C^2+2C per cell (C=16, 32, 64; 5 cells each), a 1x1 edge C^2+2C."""
    base = _count(NB201Network(arch=NB201Architecture(("none",) * 6)))
    one_3x3 = _count(NB201Network(arch=NB201Architecture(("nor_conv_3x3",) + ("none",) * 5)))
    one_1x1 = _count(NB201Network(arch=NB201Architecture(("nor_conv_1x1",) + ("none",) * 5)))
    parameter_free = _count(NB201Network(arch=NB201Architecture(("skip_connect", "avg_pool_3x3") + ("none",) * 4)))
    assert one_3x3 - base == 5 * sum(9 * c * c + 2 * c for c in (16, 32, 64))
    assert one_1x1 - base == 5 * sum(c * c + 2 * c for c in (16, 32, 64))
    assert parameter_free == base


def _tiny(**kwargs) -> NB201Network:
    torch.manual_seed(0)
    net = NB201Network(num_classes=5, C=4, N=1, **kwargs)
    # non-trivial BN affine parameters and running statistics, so that copying them matters
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d) and m.affine:
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
            if isinstance(m, torch.nn.BatchNorm2d) and m.track_running_stats:
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    return net


def _test_archs() -> list[NB201Architecture]:
    gen = torch.Generator().manual_seed(3)
    archs = NB201Space().sample_many(4, gen)
    archs += [
        NB201Architecture.from_string("|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|nor_conv_1x1~2|"),
        NB201Architecture.from_string("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"),
        NB201Architecture.from_string("|avg_pool_3x3~0|+|none~0|nor_conv_3x3~1|+|none~0|none~1|none~2|"),
    ]
    return archs


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("arch", _test_archs(), ids=str)
def test_supernet_path_equals_standalone_network(arch, train, affine):
    supernet = _tiny(affine=affine)
    standalone = supernet.standalone(arch)
    assert standalone.arch == arch
    # the stand-alone net holds exactly the path's modules: its keys are the super-net's for that path
    shared_keys = set(standalone.state_dict())
    assert shared_keys < set(supernet.state_dict())
    supernet.train(train)
    standalone.train(train)
    x = torch.randn(6, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    out_super = supernet(x, arch)
    out_alone = standalone(x)
    assert torch.equal(out_super, out_alone)
    F.cross_entropy(out_super, y).backward()
    F.cross_entropy(out_alone, y).backward()
    super_params = dict(supernet.named_parameters())
    alone_params = dict(standalone.named_parameters())
    assert set(alone_params) <= set(super_params)
    with_grad = 0
    for name, p in alone_params.items():
        other = super_params[name].grad
        if p.grad is None:  # an edge that cannot reach the output (dead) gets no gradient in either
            assert other is None, name
        else:
            with_grad += 1
            assert torch.equal(p.grad, other), name
    assert with_grad >= 4  # stem, head BN, classifier weight and bias at least
    # parameters off the path get no gradient
    for name, p in super_params.items():
        if name not in alone_params:
            assert p.grad is None or not p.grad.any(), name
    # the running statistics moved identically in train mode (and not at all in eval mode)
    super_state = supernet.state_dict()
    for key, value in standalone.state_dict().items():
        assert torch.equal(value, super_state[key]), key


def test_standalone_weights_are_a_copy():
    supernet = _tiny()
    arch = NB201Architecture.from_string("|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|nor_conv_1x1~2|")
    standalone = supernet.standalone(arch)
    with torch.no_grad():
        standalone.classifier.weight.add_(1.0)
    assert not torch.equal(standalone.classifier.weight, supernet.classifier.weight)


def _edge_modules(net: NB201Network) -> dict[torch.nn.Module, tuple[int, int, str]]:
    """Every module inside a cell edge -> (cell index, edge, operation)."""
    owners = {}
    for c, layer in enumerate(net.layers):
        if isinstance(layer, NB201Cell):
            for e, ops in enumerate(layer.edges):
                for op, module in ops.items():
                    for m in module.modules():
                        owners[m] = (c, e, op)
    return owners


def _ran(net: NB201Network, run) -> set[tuple[int, int, str]]:
    owners = _edge_modules(net)
    ran: set[tuple[int, int, str]] = set()
    handles = [m.register_forward_hook(lambda m, i, o: ran.add(owners[m])) for m in owners]
    try:
        run()
    finally:
        for h in handles:
            h.remove()
    return ran


def test_supernet_forward_runs_only_the_sampled_path():
    net = _tiny()
    cells = [c for c, layer in enumerate(net.layers) if isinstance(layer, NB201Cell)]
    x = torch.randn(2, 3, 8, 8)
    gen = torch.Generator().manual_seed(5)
    for arch in NB201Space().sample_many(5, gen) + [NB201Architecture(("none",) * 6)]:
        ran = _ran(net, lambda arch=arch: net(x, arch))
        expected = {(c, e, op) for c in cells for e, op in enumerate(arch.ops) if op != "none"}
        assert ran == expected, arch


def test_none_edges_cost_nothing_in_standalone_net():
    arch = NB201Architecture.from_string("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|")
    net = NB201Network(C=4, N=1, arch=arch)
    for layer in net.layers:
        if isinstance(layer, NB201Cell):
            # a none edge instantiates no module at all
            assert [len(ops) for ops in layer.edges] == [0 if op == "none" else 1 for op in arch.ops]
    ran = _ran(net, lambda: net(torch.randn(2, 3, 8, 8)))
    assert {e for _, e, _ in ran} == {0, 5}


def test_forward_needs_an_architecture():
    with pytest.raises(ValueError, match="needs an architecture"):
        _tiny()(torch.randn(1, 3, 8, 8))


@pytest.mark.parametrize("arch", _test_archs(), ids=str)
def test_one_hot_mixture_equals_single_path(arch):
    net = _tiny()
    net.eval()
    # built by hand (not with ``space.one_hot``): column o is OPERATIONS[o] for the full space
    weights = torch.zeros(len(EDGES), len(OPERATIONS))
    for e, op in enumerate(arch.ops):
        weights[e, OPERATIONS.index(op)] = 1.0
    x = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    assert torch.equal(net.forward_weighted(x, {"ops": weights}), net(x, arch))
    # unit edge weights (what ``one_hot`` adds for PC-DARTS' group) change nothing
    assert torch.equal(net.forward_weighted(x, {"ops": weights, "edges": torch.ones(len(EDGES))}), net(x, arch))
    assert torch.equal(net.forward_weighted(x, net.space.one_hot(arch)), net(x, arch))
    # in train mode the outputs agree too (BN statistics are per operation)
    train_net = copy.deepcopy(net).train()
    assert torch.equal(train_net.forward_weighted(x, {"ops": weights}), train_net(x, arch))


def test_mixture_columns_are_the_space_operations():
    """A network of an operation subset holds only those operations, and column o of its
    weights is the space's o-th operation (not the o-th of the global NB201 list)."""
    space = NB201Space(["nor_conv_3x3", "skip_connect"])  # space order: skip_connect, nor_conv_3x3
    torch.manual_seed(0)
    net = NB201Network(space=space, num_classes=5, C=4, N=1).eval()
    for layer in net.layers:
        if isinstance(layer, NB201Cell):
            assert all(set(ops) == {"skip_connect", "nor_conv_3x3"} for ops in layer.edges)
    arch = NB201Architecture(("nor_conv_3x3", "skip_connect", "nor_conv_3x3", "skip_connect", "skip_connect",
                              "nor_conv_3x3"))
    weights = torch.zeros(len(EDGES), 2)
    for e, op in enumerate(arch.ops):
        weights[e, 1 if op == "nor_conv_3x3" else 0] = 1.0
    x = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    assert torch.equal(net.forward_weighted(x, {"ops": weights}), net(x, arch))
    assert torch.equal(space.one_hot(arch)["ops"], weights)
    # the other column order would compute a different architecture
    assert not torch.allclose(net.forward_weighted(x, {"ops": weights.flip(-1)}), net(x, arch))


def _first_cell_output(net: NB201Network, x: torch.Tensor, weights: dict) -> torch.Tensor:
    """The first cell's output under ``forward_weighted`` (the input of the reduction after it)."""
    assert isinstance(net.layers[0], NB201Cell) and not isinstance(net.layers[1], NB201Cell)  # N=1
    seen = []
    handle = net.layers[1].register_forward_pre_hook(lambda m, inputs: seen.append(inputs[0]))
    try:
        net.forward_weighted(x, weights)
    finally:
        handle.remove()
    return seen[0]


def test_mixture_is_linear_in_the_weights():
    net = _tiny()
    net.eval()
    x = torch.randn(2, 3, 8, 8)
    w1, w2 = torch.rand(6, 5), torch.rand(6, 5)
    # with every other row zero, a cell's output is linear in the weights of the edge 0 -> 3
    w_a = torch.zeros(6, 5)
    w_a[3] = w1[3]
    w_b = torch.zeros(6, 5)
    w_b[3] = w2[3]
    out_a = _first_cell_output(net, x, {"ops": w_a})
    out_b = _first_cell_output(net, x, {"ops": w_b})
    torch.testing.assert_close(_first_cell_output(net, x, {"ops": w_a + w_b}), out_a + out_b)
    torch.testing.assert_close(_first_cell_output(net, x, {"ops": 3.0 * w_a}), 3.0 * out_a)
    assert out_a.abs().sum() > 0
    assert net.forward_weighted(x, {"ops": w1}).shape == (2, 5)


def test_canonical_form_computes_the_same_function():
    """With batch statistics and ``affine=False`` cell BN (the search setting), pruning dead edges
    changes nothing; with an affine BN a convolution on a node without inputs adds its constant
    ``beta``, the one way in which ``canonical`` is not exact (see test_nb201_space)."""
    space = NB201Space()
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(6))
    gen = torch.Generator().manual_seed(9)
    archs = [a for a in space.sample_many(60, gen) if space.canonical(a) != a][:6]
    assert len(archs) == 6
    dead_conv = NB201Architecture.from_string(
        "|nor_conv_3x3~0|+|none~0|none~1|+|avg_pool_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")
    assert space.canonical(dead_conv).ops[5] == "none"
    net = _tiny(affine=False).train()
    for arch in archs + [dead_conv]:
        torch.testing.assert_close(net(x, arch), net(x, space.canonical(arch)))
    affine = _tiny(affine=True).train()
    assert not torch.allclose(affine(x, dead_conv), affine(x, space.canonical(dead_conv)))
