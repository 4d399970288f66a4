"""DARTS' second order on the recurrent space with stateful windows and dropout (Liu et al. 2019,
Eq. 7-8; DARTS' ``rnn/architect.py``): checked against the exact hypergradient, computed here by
autograd through the virtual step with the same carried hidden states and the same dropout masks.
Smooth activations only (tanh, sigmoid): a finite difference across a ReLU kink says nothing about
the code."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lightning_nas.errors import RecipeError
from lightning_nas.strategies import DARTS, WeightOptimizer

VOCAB, ROWS, STEPS = 11, 4, 5
XI, WEIGHT_DECAY = 1.0, 1e-3  # a large virtual step makes the Hessian term large enough to catch a wrong factor


def _strategy(hypergradient: str = "finite_difference", grad_clip: float = 0.0) -> DARTS:
    torch.manual_seed(0)
    network = {"embedding_size": 6, "hidden_size": 6, "dropout": 0.3, "dropout_h": 0.2, "dropout_x": 0.3,
               "dropout_input": 0.1, "dropout_embedding": 0.1, "init_range": 0.3, "seed": 7}
    strategy = DARTS(space="darts_rnn", space_options={"num_nodes": 3, "operations": ["tanh", "sigmoid"]},
                     network=network, num_classes=VOCAB, unrolled=True, hypergradient=hypergradient,
                     arch_init_std=0.5, optimizer=WeightOptimizer(lr=XI, momentum=0.0, weight_decay=WEIGHT_DECAY,
                                                                  grad_clip=grad_clip)).double()
    strategy.train()
    return strategy


def _window(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(VOCAB, (ROWS, STEPS), generator=gen), torch.randint(VOCAB, (ROWS * STEPS,), generator=gen)


def _warm_up(strategy: DARTS) -> dict:
    """Carry a non-zero hidden state on both streams and move the dropout stream; the batch of the step."""
    net = strategy.supernet
    for stream, seed in (("weights", 1), ("arch", 2)):
        with net.carrying(stream, reset=True), torch.no_grad():
            net.forward_weighted(_window(seed)[0], strategy.normalised_weights())
    return {"weights": _window(3), "arch": _window(4), "window": {"first": False}}


class _Relaxed(nn.Module):
    def __init__(self, strategy: DARTS) -> None:
        super().__init__()
        self.net = strategy.supernet
        self.strategy = [strategy]  # not a submodule

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.strategy[0].relaxed_forward(x)


def _reference(strategy: DARTS, batch: dict, clip: float, differentiate_clip: bool) -> tuple[torch.Tensor, dict]:
    """grad_alpha L_val(w - xi (c grad_w L_train + wd w), alpha) by autograd, every forward from its
    window's carried state, the weights' forward with the masks drawn from the current stream and the
    architecture's with the masks drawn after it. Leaves the network as it found it; returns the
    hypergradient and what one step should leave behind (stream position, carried states)."""
    net = strategy.supernet
    hidden, start = {k: v.clone() for k, v in net.hidden.items()}, net.noise_state()
    names = [f"net.{n}" for n, _ in net.named_parameters()]
    weights = [p for _, p in net.named_parameters()]
    module = _Relaxed(strategy)
    (xw, yw), (xa, ya) = batch["weights"], batch["arch"]
    with net.carrying("weights"):
        train = F.cross_entropy(torch.func.functional_call(module, dict(zip(names, weights, strict=True)), (xw,)), yw)
    grads = torch.autograd.grad(train, weights, create_graph=True)
    norm = torch.sqrt(sum((g * g).sum() for g in grads))
    c = torch.clamp(clip / (norm + 1e-6), max=1.0) if clip else torch.ones(())
    c = c if differentiate_clip else c.detach()
    virtual = {n: w - XI * (c * g + WEIGHT_DECAY * w) for n, w, g in zip(names, weights, grads, strict=True)}
    with net.carrying("arch"):
        val = F.cross_entropy(torch.func.functional_call(module, virtual, (xa,)), ya)
    exact = torch.autograd.grad(val, strategy.arch_weights["ops"])[0]
    after = {"noise": net.noise_state(), "arch": net.hidden["arch"].clone(), "weights": hidden.get("weights")}
    net.hidden = hidden
    net.set_noise_state(start)
    return exact, after


def _hypergradient(strategy: DARTS, batch: dict, clip: float) -> torch.Tensor:
    (xw, yw), (xa, ya) = batch["weights"], batch["arch"]
    return strategy.unrolled_gradient(xw, yw, xa, ya, xi=XI, weight_decay=WEIGHT_DECAY, batch=batch, clip=clip)[0]


def test_finite_difference_matches_the_exact_hypergradient_with_carried_state_and_shared_masks():
    strategy = _strategy()
    batch = _warm_up(strategy)
    exact, after = _reference(strategy, batch, clip=0.0, differentiate_clip=False)
    approx = _hypergradient(strategy, batch, clip=0.0)
    net = strategy.supernet
    # the step leaves the stream after one forward per window, the weights' state as it was, the
    # architecture's state of the forward at w' (DARTS keeps that one)
    assert torch.equal(net.noise_state(), after["noise"])
    assert torch.equal(net.hidden["weights"], after["weights"]) and torch.equal(net.hidden["arch"], after["arch"])
    # what the finite difference approximates: the Hessian term (w' without it errs by this much) ...
    error = (approx - exact).norm()
    relative = float(error / exact.norm())
    assert relative < 1e-3, relative
    # ... and the hypergradient from zero states (the former unrolled step) is far from it
    zero = _strategy()
    zero_batch = _warm_up(zero)
    zero.supernet.reset_hidden()
    from_zero, _ = _reference(zero, zero_batch, clip=0.0, differentiate_clip=False)
    assert (from_zero - exact).norm() > 100 * error


def test_exact_option_equals_autograd_through_the_virtual_step():
    strategy = _strategy("exact")
    batch = _warm_up(strategy)
    exact, after = _reference(strategy, batch, clip=0.0, differentiate_clip=True)
    got = _hypergradient(strategy, batch, clip=0.0)
    assert torch.allclose(got, exact, rtol=1e-10, atol=1e-13)
    assert torch.equal(strategy.supernet.noise_state(), after["noise"])


def test_clipped_virtual_step_scales_the_hessian_term_by_the_clip_coefficient():
    """DARTS' RNN architect: the virtual step's gradient clipped, the implicit term times the clip
    coefficient c (dc/dalpha left out); the exact option differentiates c too."""
    clip = 0.05
    strategy = _strategy(grad_clip=clip)
    assert strategy.virtual_step_clip() == clip
    batch = _warm_up(strategy)
    darts, _ = _reference(strategy, batch, clip=clip, differentiate_clip=False)
    unclipped, _ = _reference(strategy, batch, clip=0.0, differentiate_clip=False)
    approx = _hypergradient(strategy, batch, clip=clip)
    error = (approx - darts).norm()
    assert error < 1e-3 * darts.norm()
    assert (unclipped - darts).norm() > 100 * error  # the clip is active and changes the result
    exact_strategy = _strategy("exact", grad_clip=clip)
    exact_batch = _warm_up(exact_strategy)
    full, _ = _reference(exact_strategy, exact_batch, clip=clip, differentiate_clip=True)
    assert torch.allclose(_hypergradient(exact_strategy, exact_batch, clip=clip), full, rtol=1e-10, atol=1e-13)


def test_architecture_step_uses_the_weight_optimizer_and_leaves_the_weights():
    strategy = _strategy()
    batch = _warm_up(strategy)
    before = {k: v.clone() for k, v in strategy.supernet.state_dict().items() if not k.endswith("_extra_state")}
    optimizer = torch.optim.SGD(strategy.weight_parameters(), lr=XI, weight_decay=WEIGHT_DECAY)
    exact, _ = _reference(strategy, batch, clip=0.0, differentiate_clip=False)
    strategy.architecture_step(batch, optimizer)
    grad = strategy.arch_weights["ops"].grad
    assert grad is not None and (grad - exact).norm() < 1e-3 * exact.norm()
    after = strategy.supernet.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())


def test_images_do_not_clip_the_virtual_step_and_bad_option_is_a_recipe_error():
    images = DARTS(network={"C": 4, "N": 1, "affine": False}, num_classes=3, in_channels=1,
                   optimizer=WeightOptimizer(grad_clip=5.0))
    assert images.virtual_step_clip() == 0.0  # DARTS' cnn/architect.py
    with pytest.raises(RecipeError, match="model.hypergradient"):
        DARTS(network={"C": 4, "N": 1, "affine": False}, hypergradient="implicit")
