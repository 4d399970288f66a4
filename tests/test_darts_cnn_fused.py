"""The DARTS CNN relaxation computed a node at a time (one stacked contraction over every operation of
every incoming edge; PC-DARTS: each source split once, a node's bypass one contraction, one shuffle
per node) against the edge-by-edge definition (DARTS Eq. 2; PC-DARTS Eq. 2 and 4: edge e returns
``beta_e * shuffle(cat(mixed_e, bypass_e))``), within float32 rounding (the per-node contraction sums
the edges in another order). One-hot weights stay bit-equal to the path
(tests/test_darts_cnn_network.py)."""
from __future__ import annotations

import pytest
import torch

from lightning_nas.nn.base import ActiveSet, mix
from lightning_nas.nn.partial import partial_mix
from lightning_nas.nn.darts_cnn import DartsCNNCell, DartsCNNNetwork
from lightning_nas.spaces.darts_cnn import DartsCNNSpace

SPACE = DartsCNNSpace()


def build(k: int = 1) -> DartsCNNNetwork:
    torch.manual_seed(0)
    return DartsCNNNetwork(SPACE, C=8, layers=3, partial_channels=k).train()


def per_edge(net: DartsCNNNetwork, x: torch.Tensor, weights: dict, active=None) -> torch.Tensor:
    """The definition, edge by edge (the cells' own ``run`` loop, each edge mixed on its own)."""
    names, k = net.operations, net.partial_channels

    def edge(cell: DartsCNNCell, e: int, h: torch.Tensor):
        group = f"{cell.label}_ops"
        options = range(len(names)) if active is None else active.indices[group][e].tolist()
        passthrough = active is not None and active.passthrough
        ops = cell.edges[str(e)]
        if k > 1:
            out = partial_mix(h, k, weights[group][e], options, lambda o, part: ops[names[o]](part) if o else None,
                              passthrough)
        else:
            out = mix(weights[group][e], options, lambda o: ops[names[o]](h) if o else None, passthrough)
        betas = weights.get(f"{cell.label}_edges")
        return out if out is None or betas is None else betas[e] * out

    return net._run(x, edge, None)[0]


def relaxed_weights(seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    return {g.name: g.normalise(torch.randn(g.shape, generator=gen)) for g in SPACE.relaxation}


@pytest.mark.parametrize("k", [1, 2])
def test_per_node_relaxation_equals_the_per_edge_definition(k: int) -> None:
    """Values and the gradients of the architecture weights; k = 2 includes the reduction cell's
    pooled bypass and the edge weights scaling the bypassed channels. In float64: batch-statistics BN
    over 2 x 2 x 2 values amplifies float32 rounding of the summation order in the gradients."""
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    results = []
    for forward in ("fused", "per_edge"):
        net = build(k).double()
        raw = {name: w.detach().double().requires_grad_() for name, w in relaxed_weights().items()}
        weights = raw if k > 1 else {n: w for n, w in raw.items() if n.endswith("_ops")}
        out = net.forward_weighted(x, weights) if forward == "fused" else per_edge(net, x, weights)
        out.square().sum().backward()
        results.append((out, {n: w.grad for n, w in weights.items()}))
    (fused, fused_grads), (reference, reference_grads) = results
    torch.testing.assert_close(fused, reference, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(fused_grads, reference_grads, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("k", [1, 2])
def test_gdas_active_options_with_constants_equal_the_per_edge_mix(k: int) -> None:
    """k = 2: the constant enters the mixed channels only (a column of ones in the node's product)."""
    net = build(k).eval()
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    weights = {n: w for n, w in relaxed_weights().items() if n.endswith("_ops")}
    picks = torch.randint(1, 8, (14, 1), generator=torch.Generator().manual_seed(4))
    if k == 1:  # `none` sampled: the node sees only its edges' constants (partial_mix has no such case)
        picks[:3] = 0
    active = ActiveSet({"normal_ops": picks, "reduce_ops": picks.flip(0)}, passthrough=True)
    torch.testing.assert_close(net.forward_weighted(x, weights, active), per_edge(net, x, weights, active),
                               rtol=1e-5, atol=1e-5)


def test_fused_relaxation_is_bit_identical_run_to_run() -> None:
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    outs = [build(2).forward_weighted(x, relaxed_weights()) for _ in range(2)]
    assert torch.equal(*outs)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """The PC-DARTS authors' shuffle: K groups of C/K channels, transposed."""
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


@pytest.mark.parametrize("k", [2, 4])
def test_partial_node_is_the_sum_of_the_authors_shuffled_edges(k: int) -> None:
    """``lightning_nas.nn.partial`` against Xu et al. 2020, Eq. 2 and 4 written out: node =
    sum_i beta_i * shuffle(cat(w_i * op_i(x_i[:, :C/K]), x_i[:, C/K:]), K), plus GDAS' constant in
    the mixed channels; here one operation output per edge (its weight scaled by beta_i, as the plans do)."""
    from lightning_nas.nn.partial import assemble, node_matrices, split_source

    gen = torch.Generator().manual_seed(0)
    sources = [torch.randn(2, 4 * k, 3, 3, generator=gen, dtype=torch.float64) for _ in range(3)]
    outputs = [torch.randn(2, 4, 3, 3, generator=gen, dtype=torch.float64) for _ in range(3)]
    w, betas = torch.rand(3, dtype=torch.float64), torch.rand(3, dtype=torch.float64)
    constant = torch.tensor([0.3], dtype=torch.float64)
    reference = sum(betas[i] * channel_shuffle(torch.cat([w[i] * outputs[i], sources[i][:, 4:]], 1), k)
                    for i in range(3))
    reference = reference + channel_shuffle(torch.cat([torch.full_like(outputs[0], 0.3),
                                                       torch.zeros_like(sources[0][:, 4:])], 1), k)
    matrix, = node_matrices(k, [[0, 1, 2]], [[0, 1, 2]], w * betas, betas, constant, like=w)
    bypasses = [split_source(h, k)[1] for h in sources]
    torch.testing.assert_close(assemble(matrix, outputs, bypasses, constant=True), reference)
    assert torch.equal(split_source(sources[0], k)[0], sources[0][:, :4])
