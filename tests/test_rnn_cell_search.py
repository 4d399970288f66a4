"""The full DARTS/ENAS recurrent cell space (8 nodes, ``none``, BN, loose ends), the published genotypes,
AWD-LSTM regularisation with seeded masks, AR/TAR, and the carried hidden state of the language model."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lightning_nas.nn.darts_rnn import DartsRNNNetwork
from lightning_nas.spaces.base import ArchitectureError
from lightning_nas.spaces.darts_rnn import OPERATIONS, DartsRNNSpace
from lightning_nas.spaces.darts_rnn_genotypes import GENOTYPES, genotype, loose_ends

V = 13
VARIANTS = {
    "darts": dict(),
    "darts_search_bn": dict(batchnorm="nodes"),
    "enas_search": dict(batchnorm="output", output="loose_ends", init_range=0.025),
    "node_sharing": dict(weight_sharing="node"),
}
REGULARISED = dict(dropout=0.5, dropout_input=0.2, dropout_embedding=0.1, dropout_x=0.5, dropout_h=0.25,
                   weight_drop=0.3)


def full_space(with_none: bool = True) -> DartsRNNSpace:
    return DartsRNNSpace(8, operations=OPERATIONS if with_none else None)


def build(space: DartsRNNSpace, arch=None, **options) -> DartsRNNNetwork:
    torch.manual_seed(0)
    config = dict(num_classes=V, embedding_size=6, hidden_size=6, seed=3)
    config.update(options)
    return DartsRNNNetwork(space=space, arch=arch, **config)


def tokens(rows: int = 3, steps: int = 5, seed: int = 0) -> torch.Tensor:
    return torch.randint(V, (rows, steps), generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------- space with none
def test_none_is_a_relaxation_column_only() -> None:
    space = full_space()
    assert space.operations == ("none", "tanh", "relu", "sigmoid", "identity")
    assert space.activations == ("tanh", "relu", "sigmoid", "identity")
    assert space.size == DartsRNNSpace(8).size == math.factorial(8) * 4 ** 8
    assert [g.shape for g in space.relaxation] == [(36, 5)]
    assert all("none" not in c.options for c in space.decisions)
    with pytest.raises(ArchitectureError):
        space.parse("none~0|tanh~1|tanh~2|tanh~3|tanh~4|tanh~5|tanh~6|tanh~7")
    # decoding ignores a dominant none column, as DARTS' genotype() does
    weights = torch.rand(36, 5, generator=torch.Generator().manual_seed(0))
    weights[:, 0] = 10.0
    arch = space.decode({"ops": weights})
    assert arch == space.decode({"ops": torch.cat([torch.zeros(36, 1), weights[:, 1:]], dim=1)})
    assert all(a != "none" for a, _ in arch.nodes)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_contract_invariants_on_the_full_space(variant: str) -> None:
    """Sampled 8-node architectures: round trips, one-hot relaxation == path == stand-alone, bit for bit."""
    space = full_space()
    net = build(space, **VARIANTS[variant]).eval()
    x = tokens()
    gen = torch.Generator().manual_seed(1)
    for _ in range(6):
        arch = space.sample(gen)
        assert space.from_decisions(space.to_decisions(arch)) == arch
        assert space.decode(space.one_hot(arch)) == arch
        path = net(x, arch)
        # relaxed vs path: the same sums in another order on some CPU kernels (AVX512); path vs stand-alone: bit for bit
        torch.testing.assert_close(net.forward_weighted(x, space.one_hot(arch)), path, rtol=1e-5, atol=1e-6)
        assert torch.equal(path, net.standalone(arch).eval()(x))


def test_weight_on_none_adds_nothing() -> None:
    space = full_space()
    net = build(space).eval()
    arch = space.sample(torch.Generator().manual_seed(2))
    weights = space.one_hot(arch)["ops"]
    weights[:, 0] = 0.7  # the zero operation contributes zero whatever its weight
    torch.testing.assert_close(net.forward_weighted(tokens(), {"ops": weights}), net(tokens(), arch), rtol=1e-5, atol=1e-6)


def test_training_mode_path_equals_standalone_with_dropout_and_batchnorm() -> None:
    """The stand-alone copy carries the generator state and BN buffers: same masks, same function."""
    space = full_space()
    for options in ({**REGULARISED}, {**REGULARISED, "batchnorm": "nodes"}):
        net = build(space, **options).train()
        arch = space.sample(torch.Generator().manual_seed(4))
        alone = net.standalone(arch).train()
        x = tokens()
        assert torch.equal(net(x, arch), alone(x))
        assert torch.equal(net(x, arch), alone(x))  # both generators advanced alike


def test_loose_ends_average_only_unused_nodes() -> None:
    space = DartsRNNSpace(2)
    arch = space.parse("tanh~0|relu~1")  # node 1 feeds node 2: only node 2 is a loose end
    assert loose_ends(arch) == (2,)
    enas = build(space, output="loose_ends").eval()
    darts = build(space).eval()
    x = tokens()
    assert not torch.equal(enas(x, arch), darts(x, arch))
    both = space.parse("tanh~0|relu~0")  # nobody uses node 1 or 2: the two outputs coincide
    assert torch.equal(enas(x, both), darts(x, both))


# ------------------------------------------------------------------------------------------- genotypes
def test_published_genotypes_load_by_name() -> None:
    space = DartsRNNSpace()
    v2 = space.parse("darts_v2")
    assert str(v2) == "sigmoid~0|relu~1|relu~1|identity~1|tanh~2|sigmoid~5|tanh~3|relu~5"
    assert space.parse("DARTS_V1") == genotype("darts_v1") and genotype("darts_v1") != v2
    enas = DartsRNNSpace(11).parse("enas")
    assert loose_ends(enas) == (2, 5, 6, 9, 10, 11)  # DARTS' concat for the ENAS cell
    with pytest.raises(ArchitectureError, match="11 nodes.*num_nodes: 11"):
        space.parse("enas")
    with pytest.raises(ArchitectureError, match="unknown DARTS RNN genotype"):
        genotype("random_ws")
    assert set(GENOTYPES) == {"darts_v1", "darts_v2", "enas"}


def test_darts_v2_at_850_units_has_23m_parameters() -> None:
    """DARTS (Liu et al. 2019, Table 2) reports 23 M for the 850-unit PTB model (10k-word vocabulary)."""
    with torch.device("meta"):
        net = DartsRNNNetwork(space=DartsRNNSpace(), num_classes=10000, embedding_size=850, hidden_size=850,
                              arch=genotype("darts_v2"), seed=0)
    count = sum(p.numel() for p in net.parameters())
    assert count == 10000 * 850 + 1700 * 1700 + 8 * 850 * 1700 + 10000 == 22_960_000


# ------------------------------------------------------------------------------------------- regularisation
def test_dropout_masks_are_reproducible_and_resumable() -> None:
    space = DartsRNNSpace(2)
    arch = space.parse("tanh~0|sigmoid~1")
    x = tokens()
    a, b = build(space, **REGULARISED).train(), build(space, **REGULARISED).train()
    outs = [a(x, arch) for _ in range(3)]
    assert all(torch.equal(p, b(x, arch)) for p in outs)  # same seed, same masks
    assert not torch.equal(outs[0], outs[1])  # fresh masks each window
    state = a.state_dict()
    resumed = build(space, **{**REGULARISED, "seed": 99}).train()
    resumed.load_state_dict(state)  # the generator state travels in the state dict
    assert torch.equal(a(x, arch), resumed(x, arch))
    other = build(space, **{**REGULARISED, "seed": 4}).train()
    assert not torch.equal(other(x, arch), build(space, **REGULARISED).train()(x, arch))
    torch.manual_seed(123)  # torch's global generator plays no part
    c = build(space, **REGULARISED).train()
    torch.manual_seed(321)
    assert torch.equal(c(x, arch), outs[0])
    for net in (a, c):
        net.eval()
    assert torch.equal(a(x, arch), c(x, arch))  # no dropout in evaluation
    assert torch.equal(a(x, arch), build(space).eval()(x, arch))


@pytest.mark.parametrize("rate", ["dropout", "dropout_input", "dropout_embedding", "dropout_x", "dropout_h",
                                  "weight_drop"])
def test_each_dropout_acts_in_training_only(rate: str) -> None:
    space = DartsRNNSpace(2)
    arch = space.parse("relu~0|tanh~1")
    x = tokens(steps=4)
    plain, dropped = build(space), build(space, **{rate: 0.5})
    assert not torch.equal(plain.train()(x, arch), dropped.train()(x, arch))
    assert torch.equal(plain.eval()(x, arch), dropped.eval()(x, arch))


def test_locked_dropout_shares_one_mask_over_time() -> None:
    space = DartsRNNSpace(2)
    net = build(space, dropout=0.5, tie_weights=False).train()
    with torch.no_grad():
        net.decoder.weight.copy_(torch.eye(V, 6))
    arch = space.parse("identity~0|identity~1")
    out = net(tokens(steps=6), arch).view(3, 6, V)[..., :6]
    zero = out == 0
    assert torch.equal(zero, zero[:, :1].expand_as(zero))  # the same units are dropped at every step


def test_ar_and_tar_terms() -> None:
    space = DartsRNNSpace(2)
    arch = space.parse("tanh~0|relu~1")
    x = tokens()
    net = build(space, ar=2.0, tar=3.0, dropout=0.5).train()
    logits = net(x, arch)
    raw, dropped = net._activations
    expected = 2.0 * dropped.pow(2).mean() + 3.0 * (raw[:, 1:] - raw[:, :-1]).pow(2).mean()
    reg = net.regularisation_loss()
    assert reg.item() > 0 and torch.equal(reg, expected)
    (F.cross_entropy(logits, torch.zeros(15, dtype=torch.long)) + reg).backward()
    assert net.cell.w0.grad is not None
    assert build(space).train().regularisation_loss() is None  # AR and TAR off
    net.eval()
    net(x, arch)
    assert net.regularisation_loss() is None  # evaluation forwards keep nothing


# ------------------------------------------------------------------------------------------- hidden state
def test_hidden_state_carries_across_windows_and_resets() -> None:
    space = DartsRNNSpace(2)
    arch = space.parse("sigmoid~0|tanh~1")
    net = build(space).eval()
    x = tokens(steps=8)
    whole = net(x, arch).view(3, 8, V)
    with net.carrying("weights", reset=True):
        first = net(x[:, :5], arch).view(3, 5, V)
        second = net(x[:, 5:], arch).view(3, 3, V)
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole, rtol=1e-6, atol=1e-7)
    assert set(net.hidden) == {"weights"} and not net.hidden["weights"].requires_grad
    fresh = net(x[:, 5:], arch)  # outside the context: a zero start, as the contract wants
    assert not torch.equal(fresh.view(3, 3, V), second)
    with net.carrying("weights", reset=True):  # first window of the next epoch
        assert torch.equal(net(x[:, 5:], arch), fresh)
    with net.carrying("val"):  # streams are independent
        net(x[:, :2], arch)
    assert set(net.hidden) == {"weights", "val"}
    net.reset_hidden("val")
    assert set(net.hidden) == {"weights"}
    with pytest.raises(ValueError, match="has shape .* this window has 2 rows"):
        with net.carrying("weights"):
            net(x[:2], arch)


def test_carried_hidden_state_is_saved_in_the_state_dict() -> None:
    space = DartsRNNSpace(2)
    arch = space.parse("sigmoid~0|tanh~1")
    net = build(space).eval()
    x = tokens(steps=8)
    with net.carrying("weights"):
        net(x[:, :4], arch)
    state = net.state_dict()
    copy = build(space)
    copy.load_state_dict(state)
    copy.eval()
    assert torch.equal(copy.hidden["weights"], net.hidden["weights"])
    with net.carrying("weights"), copy.carrying("weights"):
        assert torch.equal(net(x[:, 4:], arch), copy(x[:, 4:], arch))
    gradients = build(space, hidden_size=6).train()
    with gradients.carrying("weights"):
        gradients(x[:, :4], arch).sum().backward()
        gradients(x[:, 4:], arch).sum().backward()  # the carried state is detached: no second backward error


def test_uniform_output_model_has_perplexity_equal_to_the_vocabulary() -> None:
    space = DartsRNNSpace(2)
    net = build(space, tie_weights=False).eval()
    with torch.no_grad():
        net.decoder.weight.zero_()
        net.decoder.bias.zero_()
    arch = space.parse("tanh~0|tanh~1")
    x = tokens(rows=4, steps=7)
    y = tokens(rows=4, steps=7, seed=1).reshape(-1)
    loss = F.cross_entropy(net(x, arch), y)
    assert math.exp(loss.item()) == pytest.approx(V, rel=1e-6)
