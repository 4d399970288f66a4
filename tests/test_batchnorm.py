"""Batch-norm modes for scoring with shared weights, and ``scoring.score``'s lack of side effects."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lightning_nas.nn.batchnorm import (BNMode, batch_statistics, batchnorm_layers, recalibrated_statistics,
                                        running_statistics)
from lightning_nas.nn.nb201 import NB201Network
from lightning_nas.scoring import Score, score
from lightning_nas.spaces.nb201 import NB201Architecture

BN_KINDS = {
    "affine+track": dict(affine=True, track_running_stats=True),
    "no-affine": dict(affine=False, track_running_stats=True),  # the BN of DARTS/NB201 search cells
    "no-track": dict(affine=True, track_running_stats=False),
    "neither": dict(affine=False, track_running_stats=False),
}


def _model(kind: str) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4, **BN_KINDS[kind]), nn.ReLU(),
                          nn.Conv2d(4, 2, 1), nn.BatchNorm2d(2, **BN_KINDS[kind]))
    with torch.no_grad():
        for bn in batchnorm_layers(model):
            if bn.affine:
                bn.weight.uniform_(0.5, 1.5)
                bn.bias.uniform_(-0.5, 0.5)
            if bn.track_running_stats:
                bn.running_mean.uniform_(-1, 1)
                bn.running_var.uniform_(0.5, 2)
                bn.num_batches_tracked.fill_(17)
    return model


def _snapshot(module: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, bool], list]:
    state = {k: v.clone() for k, v in module.state_dict().items()}
    flags = {name: m.training for name, m in module.named_modules()}
    bn = [(b.track_running_stats, b.momentum, b.running_mean is None) for b in batchnorm_layers(module)]
    return state, flags, bn


def _assert_unchanged(module: nn.Module, before) -> None:
    state, flags, bn = _snapshot(module)
    assert state.keys() == before[0].keys()
    for key in state:
        assert torch.equal(state[key], before[0][key]), key
    assert flags == before[1]
    assert bn == before[2]


def _x(seed: int = 0, n: int = 8) -> torch.Tensor:
    return torch.randn(n, 3, 6, 6, generator=torch.Generator().manual_seed(seed)) * 2 + 0.5


@pytest.mark.parametrize("kind", list(BN_KINDS))
def test_batch_statistics_equal_training_normalisation_and_update_nothing(kind):
    model = _model(kind).eval()
    reference = copy.deepcopy(model).train()
    x = _x()
    expected = reference(x)
    before = _snapshot(model)
    with batch_statistics(model):
        out = model(x)
    assert torch.equal(out, expected)
    _assert_unchanged(model, before)
    # and it is not what eval() with running statistics gives (when there are any)
    if BN_KINDS[kind]["track_running_stats"]:
        assert not torch.allclose(model(x), expected, atol=1e-3)


@pytest.mark.parametrize("kind", list(BN_KINDS))
def test_batch_statistics_in_a_training_module(kind):
    model = _model(kind).train()
    before = _snapshot(model)
    with batch_statistics(model):
        model(_x())
    _assert_unchanged(model, before)


@pytest.mark.parametrize("kind", ["affine+track", "no-affine"])
def test_running_statistics_equal_eval(kind):
    model = _model(kind).train()
    reference = copy.deepcopy(model).eval()
    x = _x()
    before = _snapshot(model)
    with running_statistics(model):
        out = model(x)
    assert torch.equal(out, reference(x))
    _assert_unchanged(model, before)


def _by_hand(batches: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Cumulative average of per-batch means and unbiased variances (momentum=None in PyTorch)."""
    means = torch.stack([b.mean(dim=(0, 2, 3)) for b in batches])
    variances = torch.stack([b.var(dim=(0, 2, 3), unbiased=True) for b in batches])
    return means.mean(0), variances.mean(0)


@pytest.mark.parametrize("kind", list(BN_KINDS))
def test_recalibrated_statistics_single_layer(kind):
    bn = nn.BatchNorm2d(3, **BN_KINDS[kind])
    if bn.affine:
        with torch.no_grad():
            bn.weight.copy_(torch.tensor([0.5, 1.0, 2.0]))
            bn.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    if bn.track_running_stats:
        bn.running_mean.fill_(5.0)
        bn.running_var.fill_(9.0)
    bn.train()
    before = _snapshot(bn)
    calibration = [_x(seed) * (1 + seed) for seed in range(3)]  # batches with different statistics
    mean, var = _by_hand(calibration)
    x = _x(10)
    with recalibrated_statistics(bn, bn, calibration):
        assert not bn.training
        torch.testing.assert_close(bn.running_mean, mean)
        torch.testing.assert_close(bn.running_var, var)
        assert int(bn.num_batches_tracked) == 3
        out = bn(x)
    expected = (x - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + bn.eps)
    if bn.affine:
        expected = expected * bn.weight[None, :, None, None] + bn.bias[None, :, None, None]
    torch.testing.assert_close(out, expected.detach())
    _assert_unchanged(bn, before)


@pytest.mark.parametrize("kind", list(BN_KINDS))
def test_recalibration_covers_every_layer(kind):
    """Every BN layer, affine or not, normalises with statistics of this path (the pitfall)."""
    model = _model(kind).train()
    before = _snapshot(model)
    calibration = [_x(seed) for seed in range(2)]
    with recalibrated_statistics(model, model, calibration):
        for bn in batchnorm_layers(model):
            assert bn.running_mean is not None and int(bn.num_batches_tracked) == 2
            assert not bn.training
        # the first layer's statistics are those of its input over the calibration batches
        first = batchnorm_layers(model)[0]
        mean, var = _by_hand([model[0](b) for b in calibration])
        torch.testing.assert_close(first.running_mean, mean.detach())
        torch.testing.assert_close(first.running_var, var.detach())
    _assert_unchanged(model, before)


def _supernet() -> NB201Network:
    torch.manual_seed(0)
    return NB201Network(num_classes=4, C=4, N=1, affine=False)


ARCH = NB201Architecture.from_string("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|")


@pytest.mark.parametrize("mode", list(BNMode))
@pytest.mark.parametrize("training", [True, False])
def test_score_leaves_the_supernet_unchanged(mode, training):
    net = _supernet()
    # move the running statistics away from their initial values
    net.train()
    with torch.no_grad():
        net(torch.randn(8, 3, 8, 8), ARCH)
    net.train(training)
    net.stem[1].train(not training)  # mixed flags must come back as they were
    before = _snapshot(net)
    gen = torch.Generator().manual_seed(4)
    batches = [(torch.randn(5, 3, 8, 8, generator=gen), torch.randint(4, (5,), generator=gen)) for _ in range(2)]
    calibration = [torch.randn(5, 3, 8, 8, generator=gen) for _ in range(2)] if mode is BNMode.RECALIBRATE else ()
    result = score(net, lambda x: net(x, ARCH), batches, mode, calibration)
    _assert_unchanged(net, before)
    assert result.samples == 10
    assert 0.0 <= result.accuracy <= 100.0 and result.loss > 0


def test_score_modes_differ_and_recalibrate_needs_batches():
    net = _supernet()
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(8, 3, 8, 8) * 3, ARCH)
    gen = torch.Generator().manual_seed(1)
    batches = [(torch.randn(16, 3, 8, 8, generator=gen), torch.randint(4, (16,), generator=gen))]
    losses = {mode: score(net, lambda x: net(x, ARCH), batches, mode, [batches[0][0]]).loss for mode in BNMode}
    # recalibrating on the evaluation batch itself gives nearly batch statistics; running stats differ
    assert losses[BNMode.RUNNING] != pytest.approx(losses[BNMode.BATCH], abs=1e-6)
    assert losses[BNMode.RECALIBRATE] == pytest.approx(losses[BNMode.BATCH], rel=0.05)
    with pytest.raises(ValueError, match="needs calibration batches"):
        score(net, lambda x: net(x, ARCH), batches, "recalibrate")
    with pytest.raises(ValueError, match="zero batches"):
        score(net, lambda x: net(x, ARCH), [], "batch")


def test_score_computes_accuracy_and_loss():
    model = nn.Linear(2, 3, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(3, 2))  # logits = (x0, x1, 0)
    x1 = torch.tensor([[2.0, 0.0], [0.0, 3.0], [-1.0, -2.0]])
    y1 = torch.tensor([0, 1, 2])  # all three right
    x2 = torch.tensor([[1.0, 4.0], [5.0, 1.0]])
    y2 = torch.tensor([0, 0])  # one wrong, one right
    result = score(model, model, [(x1, y1), (x2, y2)], "batch")
    assert isinstance(result, Score)
    assert result.samples == 5
    assert result.accuracy == pytest.approx(80.0)
    logits = torch.cat([x1, x2]) @ torch.eye(3, 2).T
    expected_loss = F.cross_entropy(logits, torch.cat([y1, y2]), reduction="sum").item() / 5
    assert result.loss == pytest.approx(expected_loss, rel=1e-6)
    assert model.training  # nn.Linear starts in training mode and is put back so
