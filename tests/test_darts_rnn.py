"""The DARTS/ENAS recurrent cell space and network: text form, size, uniform sampling, decoding, the cell
equations, and "super-net path == stand-alone network with copied weights"."""
from __future__ import annotations

import dataclasses
import math
from collections import Counter

import pytest
import torch

from lightning_nas.nn import NETWORKS, DartsRNNNetwork
from lightning_nas.spaces import SPACES, ArchitectureError, DartsRNNArchitecture, DartsRNNSpace
from lightning_nas.spaces.darts_rnn import ACTIVATIONS, rnn_edges

ACT = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid, "identity": lambda v: v}


def space2() -> DartsRNNSpace:
    return SPACES.get("darts_rnn")(num_nodes=2)


def net(arch=None, **options) -> DartsRNNNetwork:
    torch.manual_seed(0)
    config = dict(num_classes=11, embedding_size=6, hidden_size=6, num_nodes=2)
    config.update(options)
    return NETWORKS.get("darts_rnn")(arch=arch, **config)


# ------------------------------------------------------------------------------------------- space
def test_text_form_round_trips_and_is_hashable() -> None:
    space = space2()
    for arch in space.enumerate():
        assert space.parse(str(arch)) == arch and hash(space.parse(str(arch))) == hash(arch)
    arch = space.parse("tanh~0|relu~1")
    assert arch.nodes == (("tanh", 0), ("relu", 1)) and str(arch) == "tanh~0|relu~1"
    big = DartsRNNSpace()  # DARTS' 8 nodes
    gen = torch.Generator().manual_seed(1)
    for _ in range(20):
        arch = big.sample(gen)
        assert big.parse(str(arch)) == arch and arch.num_nodes == 8
    with pytest.raises(dataclasses.FrozenInstanceError):
        arch.nodes = ()  # immutable


@pytest.mark.parametrize("text, why", [
    ("", "empty"), ("tanh0|relu~1", "lacks '~'"), ("tanh~0|elu~1", "unknown activation 'elu'"),
    ("tanh~1|relu~0", "node 1 can only follow nodes 0..0"), ("tanh~0|relu~2", "node 2 can only follow nodes 0..1"),
    ("tanh~0|relu~-1", "not a node number"), ("tanh~0|relu~01", "not a node number"), ("tanh~0|relu~x", "not a node"),
])
def test_malformed_strings_say_what_is_wrong_and_what_is_expected(text: str, why: str) -> None:
    with pytest.raises(ArchitectureError) as error:
        space2().parse(text)
    assert why in str(error.value) and "tanh~0|relu~1" in str(error.value)


def test_architectures_outside_the_space_are_rejected() -> None:
    with pytest.raises(ArchitectureError, match="has 3 nodes; this space's cells have 2"):
        space2().parse("tanh~0|relu~1|tanh~2")
    with pytest.raises(ArchitectureError, match="outside this space's activations"):
        DartsRNNSpace(2, operations=["tanh", "relu"]).parse("tanh~0|sigmoid~1")
    with pytest.raises(ArchitectureError, match="predecessor in 0..0"):
        DartsRNNArchitecture((("tanh", 1),))
    with pytest.raises(ArchitectureError, match="num_nodes"):
        DartsRNNSpace(0)
    with pytest.raises(ArchitectureError, match="distinct operations"):
        DartsRNNSpace(2, operations=["tanh", "elu"])
    with pytest.raises(ArchitectureError, match="at least one activation"):
        DartsRNNSpace(2, operations=["none"])


def test_size_is_n_factorial_times_ops_to_the_n_and_enumeration_is_exhaustive() -> None:
    assert space2().size == 32  # Yu et al. 2020, Sec. 3.2
    assert DartsRNNSpace().size == math.factorial(8) * 4 ** 8
    for n, ops in ((1, ACTIVATIONS), (2, ACTIVATIONS), (3, ACTIVATIONS), (3, ("tanh", "relu"))):
        space = DartsRNNSpace(n, operations=ops)
        archs = list(space.enumerate())
        assert len(archs) == len(set(archs)) == space.size == math.factorial(n) * len(ops) ** n
        assert all(space.parse(str(a)) == a for a in archs)
    assert [str(a) for a in space2().enumerate()][:2] == ["tanh~0|tanh~0", "tanh~0|relu~0"]


def test_sampling_is_uniform_over_the_32_architectures_and_seeded() -> None:
    space = space2()
    gen = torch.Generator().manual_seed(0)
    draws = 6400
    counts = Counter(space.sample(gen) for _ in range(draws))
    assert set(counts) == set(space.enumerate())
    expected = draws / 32
    chi2 = sum((counts[a] - expected) ** 2 / expected for a in space.enumerate())
    assert chi2 < 61.1  # chi-square, 31 degrees of freedom, p = 0.001
    # the predecessor of node 2 is uniform too (a sampler favouring s0 would pass the support check above)
    assert abs(sum(c for a, c in counts.items() if a.nodes[1][1] == 0) / draws - 0.5) < 0.03
    first = [space.sample(torch.Generator().manual_seed(5)) for _ in range(3)]
    assert len(set(first)) == 1
    a, b = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    assert [space.sample(a) for _ in range(10)] == [space.sample(b) for _ in range(10)]


def test_decode_takes_the_best_predecessor_and_activation_per_node() -> None:
    space = space2()
    assert space.edges == rnn_edges(2) == ((1, 0), (2, 0), (2, 1))
    weights = torch.zeros(3, 4)
    weights[0, ACTIVATIONS.index("sigmoid")] = 1.0
    weights[1, ACTIVATIONS.index("relu")] = 0.5
    weights[2, ACTIVATIONS.index("identity")] = 0.7  # node 2: from node 1 beats from s0
    assert str(space.decode({"ops": weights})) == "sigmoid~0|identity~1"
    weights[1, ACTIVATIONS.index("tanh")] = 0.9
    assert str(space.decode({"ops": weights})) == "sigmoid~0|tanh~0"
    with pytest.raises(ArchitectureError, match=r"\(3, 4\)"):
        space.decode({"ops": torch.zeros(2, 4)})


# ------------------------------------------------------------------------------------------- network
def reference(model: DartsRNNNetwork, x: torch.Tensor, arch: DartsRNNArchitecture) -> torch.Tensor:
    """The cell equations written out step by step (Liu et al. 2019 App. A.1.2 / ENAS Eq. 2-5)."""
    state = dict(model.named_parameters())
    emb, w0 = state["encoder.weight"][x], state["cell.w0"]
    hidden = w0.shape[1] // 2
    logits = []
    for b in range(x.shape[0]):
        h = torch.zeros(hidden)
        for t in range(x.shape[1]):
            ch = torch.cat([emb[b, t], h]) @ w0
            s = [h + torch.sigmoid(ch[:hidden]) * (torch.tanh(ch[hidden:]) - h)]
            for i, (act, j) in enumerate(arch.nodes, start=1):
                key = f"cell.node_weights.node{i}_from{j}"
                ch = s[j] @ state[key] if key in state else s[j] @ state[f"cell.node_weights.node{i}"]
                s.append(s[j] + torch.sigmoid(ch[:hidden]) * (ACT[act](ch[hidden:]) - s[j]))
            h = sum(s[1:]) / len(arch.nodes)
            logits.append(h @ state["decoder.weight"].T + state["decoder.bias"])
    order = torch.arange(x.numel()).view(x.shape[0], x.shape[1]).reshape(-1)  # row b*T + t
    return torch.stack(logits)[order]


@pytest.mark.parametrize("sharing", ["edge", "node"])
def test_network_computes_the_darts_cell(sharing: str) -> None:
    model = net(weight_sharing=sharing, tie_weights=False, embedding_size=5)
    with torch.no_grad():
        model.decoder.bias.normal_()  # non-zero, so that a missing bias shows
    x = torch.randint(11, (2, 4), generator=torch.Generator().manual_seed(0))
    for text in ("tanh~0|relu~1", "sigmoid~0|identity~0", "identity~0|sigmoid~1"):
        arch = space2().parse(text)
        out = model(x, arch)
        assert out.shape == (8, 11)
        torch.testing.assert_close(out, reference(model, x, arch), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("sharing", ["edge", "node"])
def test_supernet_path_equals_standalone_network_with_copied_weights(sharing: str) -> None:
    supernet = net(weight_sharing=sharing)
    x = torch.randint(11, (3, 5), generator=torch.Generator().manual_seed(1))
    y = torch.randint(11, (15,), generator=torch.Generator().manual_seed(2))
    for arch in space2().enumerate():
        supernet.zero_grad(set_to_none=True)
        alone = supernet.standalone(arch)
        out_super, out_alone = supernet(x, arch), alone(x)
        assert torch.equal(out_super, out_alone)
        # the relaxation sums stacked node products: same values, summation order may differ by CPU kernel (AVX512)
        torch.testing.assert_close(supernet.forward_weighted(x, space2().one_hot(arch)), out_super, rtol=1e-5, atol=1e-6)
        torch.nn.functional.cross_entropy(out_super, y).backward()
        torch.nn.functional.cross_entropy(out_alone, y).backward()
        grads = {k: p.grad for k, p in supernet.named_parameters()}
        for key, p in alone.named_parameters():
            torch.testing.assert_close(p.grad, grads[key], rtol=1e-6, atol=1e-7)
        on_path = {k for k, _ in alone.named_parameters()}
        assert all(g is None for k, g in grads.items() if k not in on_path)  # off-path weights untouched


def test_standalone_holds_only_its_path_and_its_keys_are_a_subset_of_the_supernet() -> None:
    supernet = net()
    super_keys = set(supernet.state_dict())
    assert {k for k in super_keys if "node_weights" in k} == {
        "cell.node_weights.node1_from0", "cell.node_weights.node2_from0", "cell.node_weights.node2_from1"}
    arch = space2().parse("relu~0|tanh~1")
    alone = net(arch)
    assert set(alone.state_dict()) <= super_keys
    assert {k for k in alone.state_dict() if "node_weights" in k} == {
        "cell.node_weights.node1_from0", "cell.node_weights.node2_from1"}
    v, e, h = 11, 6, 6
    assert sum(p.numel() for p in alone.parameters()) == v * e + (e + h) * 2 * h + 2 * h * 2 * h + v  # tied decoder
    with pytest.raises(ValueError, match="runs only its own architecture"):
        alone(torch.zeros(1, 2, dtype=torch.long), space2().parse("relu~0|tanh~0"))
    node = net(weight_sharing="node")  # DARTS: one matrix per node, every stand-alone net holds all of them
    assert {k for k in node.state_dict() if "node_weights" in k} == {"cell.node_weights.node1",
                                                                     "cell.node_weights.node2"}
    assert set(net(arch, weight_sharing="node").state_dict()) == set(node.state_dict())


def test_mixture_with_one_hot_weights_is_the_single_path() -> None:
    supernet = net()
    space = space2()
    x = torch.randint(11, (2, 3), generator=torch.Generator().manual_seed(3))
    for text in ("tanh~0|relu~1", "sigmoid~0|identity~0"):
        arch = space.parse(text)
        weights = torch.zeros(len(space.edges), len(space.operations))
        for i, (act, j) in enumerate(arch.nodes, start=1):
            weights[space.edges.index((i, j)), space.operations.index(act)] = 1.0
        torch.testing.assert_close(supernet.forward_weighted(x, {"ops": weights}), supernet(x, arch))
        assert space.decode({"ops": weights}) == arch


def test_initialisation_is_deterministic_and_in_the_documented_ranges() -> None:
    a, b = net(tie_weights=False), net(tie_weights=False)
    for (key, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        if key == "_extra_state":  # the dropout generator's state and the carried hidden states
            assert torch.equal(p["dropout_generator"], q["dropout_generator"]) and p["hidden"] == q["hidden"] == {}
        else:
            assert torch.equal(p, q), key
    assert a.seed == b.seed
    assert a.cell.w0.abs().max() <= 0.04 and a.cell.w0.abs().max() > 0.03
    assert all(w.abs().max() <= 0.04 for w in a.cell.node_weights.values())
    assert a.encoder.weight.abs().max() <= 0.1 and a.decoder.weight.abs().max() <= 0.1
    assert torch.count_nonzero(a.decoder.bias) == 0
    assert net(init_range=0.025).cell.w0.abs().max() <= 0.025
    tied = net()
    assert tied.decoder.weight is tied.encoder.weight


def test_configuration_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="architecture has 3 nodes, this network 2"):
        net()(torch.zeros(1, 2, dtype=torch.long), DartsRNNSpace(3).parse("tanh~0|tanh~1|tanh~2"))
    with pytest.raises(ValueError, match="tie_weights needs embedding_size == hidden_size"):
        net(embedding_size=4)
    with pytest.raises(ValueError, match="weight_sharing"):
        net(weight_sharing="cell")
    with pytest.raises(ValueError, match="num_nodes=3 but the architecture"):
        net(space2().parse("tanh~0|tanh~1"), num_nodes=3)
    assert net(space2().parse("tanh~0|tanh~1"), num_nodes=None).space.num_nodes == 2
    with pytest.raises(ValueError, match="batchnorm"):
        net(batchnorm="cell")
    with pytest.raises(ValueError, match="output"):
        net(output="last")
    with pytest.raises(ValueError, match="dropout_h must be in"):
        net(dropout_h=1.0)


def test_dropout_uses_the_networks_own_generator() -> None:
    """Masks come from the network's generator, not torch's global one, and eval mode is deterministic."""
    model = net(dropout=0.5).train()
    x = torch.randint(11, (2, 3), generator=torch.Generator().manual_seed(3))
    arch = space2().parse("tanh~0|relu~1")
    state = model.dropout_generator.get_state()
    torch.manual_seed(4)
    first = model(x, arch)
    torch.manual_seed(5)  # the global generator does not matter
    model.dropout_generator.set_state(state)
    assert torch.equal(first, model(x, arch))
    assert not torch.equal(first, model(x, arch))
    model.eval()
    assert torch.equal(model(x, arch), net(dropout=0.0)(x, arch))
