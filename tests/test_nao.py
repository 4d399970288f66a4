"""NAO (Luo et al. 2018): the encoder-decoder reconstructs what it was trained on, a gradient step in
embedding space raises the predictor's value, and one NAO-WS cycle updates the pool as the authors' loop does.
(Every space, determinism, resumption and DDP: the registry-driven tests in test_contract.py,
test_strategies.py and test_ddp_strategies.py.)"""
from __future__ import annotations

import pytest
import torch

from lightning_nas.errors import RecipeError
from lightning_nas.spaces.nb201 import NB201Space
from lightning_nas.strategies import STRATEGIES
from lightning_nas.strategies.nao import NAO, normalised
from lightning_nas.strategies.nao_model import EncoderPredictorDecoder, Tokens

TINY = dict(network={"C": 4, "N": 1, "affine": False}, num_classes=3, in_channels=1)


def _trained_epd(pool, targets, epochs: int = 40) -> EncoderPredictorDecoder:
    """An encoder-predictor-decoder trained on ``pool`` by the strategy's own loop (Eq. 1)."""
    strategy = NAO(seed_architectures=len(pool), hidden=32, mlp_hidden=32, mlp_layers=2, epd_epochs=epochs,
                   epd_batch_size=len(pool), epd_lr=0.01, trade_off=0.5, **TINY)
    strategy.train_epd(pool, targets)
    return strategy.epd


def test_tokens_round_trip_and_constrain_every_position():
    space = NB201Space()
    tokens = Tokens(space.decisions)
    picks = [space.to_decisions(a) for a in space.sample_many(5, torch.Generator().manual_seed(0))]
    assert tokens.decode(tokens.encode(picks)) == picks
    # a choice of 2 inputs among 4: the first pick leaves room for the second, the second lies above the first
    from lightning_nas.spaces.decisions import Choice

    two = Tokens([Choice("op", ("a", "b")), Choice("in", ("0", "1", "2", "3"), pick=2, kind="input")])
    first = two.allowed(1, None, 1)[0].nonzero().flatten().tolist()
    assert first == [2, 3, 4]  # options 0..2 of the input choice (ids offset by 2)
    second = two.allowed(2, torch.tensor([3]), 1)[0].nonzero().flatten().tolist()
    assert second == [4, 5]


def test_encoder_decoder_reconstructs_the_pool_it_was_trained_on():
    space = NB201Space()
    pool = [space.to_decisions(a) for a in space.sample_many(24, torch.Generator().manual_seed(1))]
    targets = normalised([float(i) for i in range(len(pool))])
    untrained = _trained_epd(pool, targets, epochs=0)
    tokens = untrained.tokens.encode(pool)
    before = (untrained.reconstruct(tokens) == tokens).all(dim=1).float().mean()
    epd = _trained_epd(pool, targets)
    after = (epd.reconstruct(tokens) == tokens).all(dim=1).float().mean()
    assert before < 0.2 and after == 1.0, (before, after)


def test_a_predictor_gradient_step_raises_the_predicted_value():
    space = NB201Space()
    pool = [space.to_decisions(a) for a in space.sample_many(24, torch.Generator().manual_seed(2))]
    epd = _trained_epd(pool, normalised([float(i % 7) for i in range(len(pool))]), epochs=30)
    epd.eval()
    tokens = epd.tokens.encode(pool)
    _, before, up = epd.improve(tokens, 0.5)
    _, same, unmoved = epd.improve(tokens, 0.0)
    _, _, down = epd.improve(tokens, -0.5)
    assert torch.equal(before, same) and torch.allclose(unmoved, before, atol=1e-6)
    assert (up > before).all() and (down < before).all()


def test_a_cycle_keeps_the_best_replaces_the_worst_by_new_architectures():
    torch.manual_seed(0)
    strategy = NAO(seed_architectures=8, hidden=16, mlp_hidden=16, mlp_layers=1, epd_epochs=5, epd_batch_size=4,
                   top_architectures=4, new_architectures=3, max_step_size=20, **TINY)
    old = list(strategy.pool)
    gen = torch.Generator().manual_seed(3)
    batches = [(torch.randn(16, 1, 8, 8, generator=gen), torch.randint(3, (16,), generator=gen))]
    stats = strategy.cycle(batches)
    new = int(stats["new_architectures"])
    assert 1 <= new <= 3 and len(strategy.pool) == 8
    scored = [s for s in strategy.pool_scores if s is not None]
    assert len(scored) == 8 - new and scored == sorted(scored, reverse=True)  # best first, worst dropped
    assert set(strategy.pool[:8 - new]) <= set(old) and not set(strategy.pool[8 - new:]) & set(old)
    assert strategy.pool_scores[8 - new:] == [None] * new
    # the answer's candidates: the pool, best-scored first
    candidates = strategy.candidate_architectures(100, gen)
    assert [strategy.space.to_decisions(a) for a in candidates] == strategy.pool


def test_normalised_targets_and_bad_options():
    assert normalised([2.0, 4.0, 3.0]) == [0.0, 1.0, 0.5]
    assert normalised([1.0, 1.0]) == [0.5, 0.5]
    assert normalised([1.0, float("-inf"), 3.0]) == [0.0, 0.0, 1.0]
    with pytest.raises(RecipeError, match="model.trade_off"):
        NAO(trade_off=1.5, **TINY)
    assert STRATEGIES.get("nao") is NAO
