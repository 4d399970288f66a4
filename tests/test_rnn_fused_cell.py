"""The relaxed recurrent cell computed per node (one batched product over a node's stacked inputs,
as DARTS' own search cell, ``rnn/model_search.py``): same values as the per-edge definition within
float32 rounding, GDAS' active options and straight-through constants, and the kernel count.

Tolerance: the fused cell sums the mixture in another order than an edge-by-edge loop (or the
authors' activation-by-activation loop): rtol 1e-5, atol 1e-6 on logits of a 3-step window, the
tolerance the cell-equation test (tests/test_darts_rnn.py) uses. One-hot weights stay bit-equal to
the path (tests/test_rnn_cell_search.py, tests/test_contract.py)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from lightning_nas.nn.base import ActiveSet
from lightning_nas.nn.darts_rnn import ACTIVATION_FUNCTIONS, DartsRNNNetwork
from lightning_nas.spaces.darts_rnn import OPERATIONS, DartsRNNSpace, rnn_edges

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "speed"))
from strategy_step_time import kernel_counter  # noqa: E402

V, HIDDEN, NODES = 13, 6, 4


def build(**options) -> DartsRNNNetwork:
    torch.manual_seed(0)
    space = DartsRNNSpace(NODES, operations=OPERATIONS)
    return DartsRNNNetwork(space=space, num_classes=V, embedding_size=HIDDEN, hidden_size=HIDDEN, seed=3,
                           init_range=0.5, **options)


def tokens() -> torch.Tensor:
    return torch.randint(V, (3, 4), generator=torch.Generator().manual_seed(0))


def mixture() -> torch.Tensor:
    logits = torch.randn(len(rnn_edges(NODES)), len(OPERATIONS), generator=torch.Generator().manual_seed(1))
    return F.softmax(logits, dim=-1)


def per_edge(net: DartsRNNNetwork, x: torch.Tensor, weights: torch.Tensor, chosen=None, passthrough=False):
    """The relaxation written edge by edge (Liu et al. 2019, Eq. 2 / App. A.1.2): one product per edge,
    node i = sum_j sum_o w[(i,j), o] (s_j + c_ij (o(h_ij) - s_j)); ``chosen`` restricts the options
    (GDAS), ``passthrough`` adds the other weights as constants. Evaluation mode, no dropout."""
    cell, edges = net.cell, rnn_edges(NODES)
    emb = net.encoder.weight[x]
    h = torch.zeros(x.shape[0], HIDDEN)
    outputs = []
    for t in range(x.shape[1]):
        c0, h0 = (torch.cat([emb[:, t], h], dim=1) @ cell.w0).chunk(2, dim=-1)
        s0 = h + torch.sigmoid(c0) * (torch.tanh(h0) - h)
        states = [cell._norm(s0, "nodes")]
        for i in range(1, NODES + 1):
            node = torch.zeros_like(s0)
            for j in range(i):
                e = edges.index((i, j))
                c, hh = (states[j] @ cell.matrix(i, j)).chunk(2, dim=-1)
                for o, name in enumerate(OPERATIONS):
                    if chosen is not None and o not in chosen[e]:
                        node = node + (weights[e, o] if passthrough else 0.0)
                    elif name != "none":
                        node = node + weights[e, o] * (states[j] + torch.sigmoid(c) * (ACTIVATION_FUNCTIONS[name](hh) - states[j]))
            states.append(cell._norm(node, "nodes"))
        h = torch.stack(states[1:]).mean(dim=0)
        outputs.append(h)
    return net.decoder(torch.stack(outputs, dim=1).reshape(-1, HIDDEN))


@pytest.mark.parametrize("options", [{}, {"weight_sharing": "node", "batchnorm": "nodes"}])
def test_fused_cell_equals_the_per_edge_relaxation(options: dict) -> None:
    net = build(**options).eval()
    x, weights = tokens(), mixture()
    fused = net.forward_weighted(x, {"ops": weights})
    torch.testing.assert_close(fused, per_edge(net, x, weights), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("passthrough", [False, True])
def test_active_options_and_straight_through_constants(passthrough: bool) -> None:
    """GDAS: one sampled option per edge (``none`` included), the others masked out or, in the
    authors' straight-through mode, added as constants."""
    net = build().eval()
    x = tokens()
    weights = mixture().requires_grad_()
    picks = torch.randint(len(OPERATIONS), (len(rnn_edges(NODES)), 1), generator=torch.Generator().manual_seed(5))
    picks[0, 0] = 0  # node 1 takes ``none``: zero, plus the constant in the reference mode
    active = ActiveSet({"ops": picks}, passthrough=passthrough)
    fused = net.forward_weighted(x, {"ops": weights}, active)
    chosen = [set(row.tolist()) for row in picks]
    torch.testing.assert_close(fused, per_edge(net, x, weights, chosen, passthrough), rtol=1e-5, atol=1e-6)
    fused.sum().backward()
    mask = torch.zeros_like(weights, dtype=torch.bool).scatter_(1, picks, True)
    mask[:, 0] = mask[:, 0] & passthrough  # a sampled none has no output: its weight acts through constants only
    if passthrough:
        assert (weights.grad[~mask] != 0).any()  # the constants carry a gradient to every weight
    else:
        assert torch.all(weights.grad[~mask] == 0)  # only the sampled options' weights learn


def test_one_product_per_node_and_time_step() -> None:
    """DARTS' search cell does one product per node and time step; so does the fused relaxation (plus
    one small contraction over the activations), whatever the node's number of inputs. The per-edge
    cell did one per edge: 10 for 4 nodes, 36 for DARTS' 8."""
    net = build(weight_sharing="node").eval()
    x = tokens()
    steps = x.shape[1]
    counter = kernel_counter()
    with counter, torch.no_grad():
        net.forward_weighted(x, {"ops": mixture()})
    # 1 input projection + per step (1 for s0 + per node 1 product + 1 contraction) + the decoder
    assert counter.products == 1 + steps * (1 + 2 * NODES) + 1
    edges_counter = kernel_counter()
    with edges_counter, torch.no_grad():
        net(x, net.space.sample(torch.Generator().manual_seed(0)))
    assert edges_counter.products == 1 + steps * (1 + NODES) + 1  # the path: one product per node
