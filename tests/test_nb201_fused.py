"""The NB201 relaxation computed a node at a time (one stacked contraction per node, parameter-free
operations and the convolutions' ReLU once per source node) against the edge-by-edge definition
(DARTS Eq. 2; PC-DARTS Eq. 2 and 4), within float32 rounding (rtol 1e-5, atol 1e-5 on logits: the
per-node contraction sums edges in another order). One-hot weights stay bit-equal to the path
(tests/test_nb201_network.py, tests/test_contract.py)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lightning_nas.nn.base import ActiveSet, mix, node_value
from lightning_nas.nn.partial import partial_mix
from lightning_nas.nn.nb201 import NB201Cell, NB201Network


def build(k: int = 1) -> NB201Network:
    torch.manual_seed(0)
    return NB201Network(C=8, N=1, affine=False, partial_channels=k).eval()


def per_edge(net: NB201Network, x: torch.Tensor, ops: torch.Tensor, edges=None, active=None) -> torch.Tensor:
    """Edge by edge: edge e returns beta_e * (mixed op of e), the whole partial-channel output scaled
    by beta_e (PC-DARTS Eq. 4, the authors' ``weights2[j] * MixedOp(h)``)."""
    names, k = net.operations, net.partial_channels
    passthrough = active is not None and active.passthrough

    def edge(cell: NB201Cell, e: int, h: torch.Tensor):
        options = range(len(names)) if active is None else active.indices["ops"][e].tolist()
        if k > 1:
            out = partial_mix(h, k, ops[e], options, lambda o, part: cell.operation(e, names[o], part), passthrough)
        else:
            out = mix(ops[e], options, lambda o: cell.operation(e, names[o], h), passthrough)
        return out if edges is None or out is None else edges[e] * out

    h = net.stem(x)
    for layer in net.layers:
        if isinstance(layer, NB201Cell):
            nodes = [h]
            for inputs in layer.inputs:
                total = None
                for e, src in inputs:
                    out = edge(layer, e, nodes[src])
                    if out is not None:
                        total = out if total is None else total + out
                nodes.append(node_value(total, h))
            h = nodes[-1]
        else:
            h = layer(h)
    return net.classifier(net.pool(net.head(h)).flatten(1))


def weights(rows: int = 6, cols: int = 5, seed: int = 0) -> torch.Tensor:
    return F.softmax(torch.randn(rows, cols, generator=torch.Generator().manual_seed(seed)), dim=-1)


@pytest.mark.parametrize("k", [1, 2])
def test_per_node_relaxation_equals_the_per_edge_definition(k: int) -> None:
    """k = 2: the edge weights scale the bypassed channels too (before, only the mixed ones were)."""
    net = build(k)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    ops = weights()
    edges = F.softmax(torch.randn(6, generator=torch.Generator().manual_seed(2)), dim=0) if k > 1 else None
    out = net.forward_weighted(x, {"ops": ops} if edges is None else {"ops": ops, "edges": edges})
    torch.testing.assert_close(out, per_edge(net, x, ops, edges), rtol=1e-5, atol=1e-5)


def test_gdas_active_options_with_constants_equal_the_per_edge_mix() -> None:
    net = build()
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    ops = weights()
    picks = torch.tensor([[0], [2], [1], [3], [4], [2]])
    active = ActiveSet({"ops": picks}, passthrough=True)
    torch.testing.assert_close(net.forward_weighted(x, {"ops": ops}, active), per_edge(net, x, ops, active=active),
                               rtol=1e-5, atol=1e-5)


def test_partial_mix_with_only_gdas_constant_broadcasts_it():
    """GDAS' reference estimator with ``none`` sampled on a partial-channel edge (NAS-Bench-1Shot1's
    PC-DARTS path): nothing runs, so the mixed C/K channels are the inactive weights' sum, broadcast,
    and the bypass channels pass unchanged (an IndexError on a 0-dim tensor before)."""
    x = torch.arange(2 * 4 * 3 * 3, dtype=torch.float32).reshape(2, 4, 3, 3)
    weights = torch.tensor([0.5, 0.2, 0.3])
    out = partial_mix(x, 2, weights, [0], lambda o, part: None, passthrough=True)
    assert out.shape == x.shape
    # shuffled: channel 2j holds the mixed part's channel j, channel 2j + 1 the bypass' channel j
    assert torch.equal(out[:, 0::2], torch.full((2, 2, 3, 3), 0.5)) and torch.equal(out[:, 1::2], x[:, 2:])
