"""PC-DARTS' edges of one operation run as one kernel (``lightning_nas.nn.grouped``), and PC-DARTS
dispatches fewer operators per training step than DARTS (first order) on NB201 (issue 25).

The grouped run must equal the edges run one by one - outputs, gradients, and every BN's running
statistics and batch count - and keep the modules' buffers their own (state dicts, ``.to()``)."""
from __future__ import annotations

import argparse
import copy
import importlib.util
import io

import pytest
import torch
from torch import nn

from lightning_nas.nn.darts_cnn import DartsCNNCell, DartsCNNNetwork
from lightning_nas.nn.darts_ops import FactorizedReduce, build_op
from lightning_nas.nn.grouped import chains, run_chains
from lightning_nas.nn.nb201 import NB201Cell, NB201Network
from lightning_nas.nn.partial import partial_mix
from lightning_nas.results.render import ROOT
from lightning_nas.spaces.darts_cnn import DartsCNNSpace


def buffers(module: nn.Module) -> dict[str, torch.Tensor]:
    return {name: b.clone() for name, b in module.named_buffers()}


@pytest.mark.parametrize("name", ["sep_conv_3x3", "dil_conv_5x5", "max_pool_3x3"])
def test_grouped_chain_equals_the_edges_one_by_one(name: str) -> None:
    """Three edges' copies of an operation (search BNs: running statistics, no affine), in training:
    the grouped output, input gradient and each BN's statistics and count equal the edges run alone
    (float64: batch-statistics BN over 72 values amplifies float32 rounding in the gradients)."""
    torch.manual_seed(0)
    modules = [build_op(name, 4, 1, affine=False, track_running_stats=True, pool_bn=True).double().train()
               for _ in range(3)]
    reference = copy.deepcopy(modules)
    inputs = [torch.randn(2, 4, 6, 6, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    stages = chains(modules)
    assert stages is not None
    for _ in range(2):  # the second forward finds the statistics already joined (views, no copy)
        grouped = run_chains(stages, torch.cat(inputs, dim=1), {})
        alone = torch.cat([m(x) for m, x in zip(reference, inputs, strict=True)], dim=1)
        torch.testing.assert_close(grouped, alone, rtol=1e-10, atol=1e-10)
        grads = torch.autograd.grad(grouped.square().sum(), inputs)
        torch.testing.assert_close(grads, torch.autograd.grad(alone.square().sum(), inputs), rtol=1e-9, atol=1e-10)
        for m, r in zip(modules, reference, strict=True):
            torch.testing.assert_close(buffers(m), buffers(r), rtol=1e-12, atol=1e-12)
    means = [b.running_mean for m in modules for b in m.modules() if isinstance(b, nn.BatchNorm2d)]
    assert len({t.untyped_storage().data_ptr() for t in means}) == len(means) // 3  # per BN position, one storage


def test_moved_modules_rejoin_and_keep_their_statistics() -> None:
    """``.double()`` gives every buffer its own storage; the next grouped forward joins them again
    with their values, and a state dict written in between loads into fresh modules unchanged."""
    torch.manual_seed(0)
    modules = [build_op("sep_conv_3x3", 4, 1, affine=False, track_running_stats=True) for _ in range(2)]
    x = torch.randn(2, 8, 5, 5)
    run_chains(chains(modules), x, {})
    state = [copy.deepcopy(m.state_dict()) for m in modules]
    for m in modules:
        m.double()
    reference = copy.deepcopy(modules)
    grouped = run_chains(chains(modules), x.double(), {})
    alone = torch.cat([m(part) for m, part in zip(reference, x.double().split(4, dim=1), strict=True)], dim=1)
    torch.testing.assert_close(grouped, alone)
    for m, r in zip(modules, reference, strict=True):
        torch.testing.assert_close(buffers(m), buffers(r))
    saved = io.BytesIO()
    torch.save(modules[1].state_dict(), saved)
    fresh = build_op("sep_conv_3x3", 4, 1, affine=False, track_running_stats=True).double()
    fresh.load_state_dict(torch.load(io.BytesIO(saved.getvalue())))
    torch.testing.assert_close(buffers(fresh), buffers(modules[1]))
    assert not torch.equal(state[1]["0.3.running_mean"].double(), modules[1].state_dict()["0.3.running_mean"])


def test_what_cannot_run_as_one_is_refused() -> None:
    """A module two edges share (op on node: its statistics would be updated once, not twice), a
    cumulative-average BN (its factor is its own count), a module that is no chain, different shapes."""
    conv = build_op("sep_conv_3x3", 4, 1, affine=False, track_running_stats=True)
    assert chains([conv, conv]) is None
    cumulative = [nn.BatchNorm2d(4, momentum=None) for _ in range(2)]
    assert chains(cumulative) is None
    assert chains([FactorizedReduce(4, 4), FactorizedReduce(4, 4)]) is None
    assert chains([build_op("sep_conv_3x3", 4, 1, False, True), build_op("sep_conv_3x3", 4, 2, False, True)]) is None


def nb201_per_edge(net: NB201Network, x: torch.Tensor, weights: dict) -> torch.Tensor:
    """PC-DARTS on NB201 edge by edge (``partial_mix``, beta_e scaling the whole edge)."""
    names, k = net.operations, net.partial_channels

    def edge(cell: NB201Cell, e: int, h: torch.Tensor) -> torch.Tensor:
        out = partial_mix(h, k, weights["ops"][e], range(len(names)),
                          lambda o, part: cell.operation(e, names[o], part))
        return weights["edges"][e] * out

    return net._run(x, edge)


def darts_per_edge(net: DartsCNNNetwork, x: torch.Tensor, weights: dict) -> torch.Tensor:
    names, k = net.operations, net.partial_channels

    def edge(cell: DartsCNNCell, e: int, h: torch.Tensor) -> torch.Tensor:
        ops = cell.edges[str(e)]
        out = partial_mix(h, k, weights[f"{cell.label}_ops"][e], range(len(names)),
                          lambda o, part: ops[names[o]](part) if o else None)
        return weights[f"{cell.label}_edges"][e] * out

    return net._run(x, edge, None)[0]


@pytest.mark.parametrize("space", ["nb201", "darts_cnn"])
def test_pcdarts_network_updates_every_bn_as_edge_by_edge(space: str) -> None:
    """A training forward of the PC-DARTS super-net (grouped edges) and the same net edge by edge:
    equal logits and equal running statistics and batch counts in every BN, in float64."""
    torch.manual_seed(0)
    if space == "nb201":
        net = NB201Network(C=8, N=1, affine=False, partial_channels=2).double().train()
        groups = net.space.relaxation
        per_edge = nb201_per_edge
    else:
        net = DartsCNNNetwork(DartsCNNSpace(), C=8, layers=3, partial_channels=2).double().train()
        groups = net.space.relaxation
        per_edge = darts_per_edge
    reference = copy.deepcopy(net)
    gen = torch.Generator().manual_seed(1)
    weights = {g.name: g.normalise(torch.randn(g.shape, generator=gen, dtype=torch.float64)) for g in groups}
    x = torch.randn(2, 3, 8, 8, generator=gen, dtype=torch.float64)
    for _ in range(2):
        torch.testing.assert_close(net.forward_weighted(x, weights), per_edge(reference, x, weights),
                                   rtol=1e-9, atol=1e-9)
    assert buffers(net).keys() == buffers(reference).keys()
    torch.testing.assert_close(buffers(net), buffers(reference), rtol=1e-9, atol=1e-9)


def test_pcdarts_dispatches_fewer_operators_than_darts_on_nb201() -> None:
    """Issue 25: PC-DARTS sends 1/K of the channels through the operations, so a training step must
    not dispatch more operators than DARTS (first order) - counted as ``speed/strategy_step_time.py``
    counts them (its own ``measure``: the strategies' real training step, views left out), on a
    small NB201 super-net."""
    spec = importlib.util.spec_from_file_location("strategy_step_time", ROOT / "speed" / "strategy_step_time.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    args = argparse.Namespace(space="nb201", space_options="{}", network="{}", hidden=16, bptt=35, vocab=100, C=8, N=1,
                              image=8, batch=2, steps=1, threads=1, one=None, record=None)
    darts = module.measure("DARTS (1st order)", args)
    pcdarts = module.measure("PC-DARTS (K=4)", args)
    assert pcdarts["kernels"] < darts["kernels"], (pcdarts["kernels"], darts["kernels"])
