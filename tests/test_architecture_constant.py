"""Two changes to a training step that must not change its numbers (issue 25: fewer operators per step):
the weight step treats the architecture as a constant and a first-order architecture step the weights
(``BilevelStrategy.architecture_constant``, ``weights_constant``: autograd records no path back to
them, so the backward skips their gradients), and the optimisers use
their multi-tensor implementations (``settings.FOREACH``). Each trains bit for bit what the plain
step trains, on every space, for every bilevel (resp. training) strategy."""
from __future__ import annotations

import contextlib

import pytest
import torch

from lightning_nas.errors import UnsupportedCombinationError
from lightning_nas.registry import STRATEGIES
from lightning_nas.strategies.bilevel import BilevelStrategy
from tests.test_contract import SPACE_NAMES, build_for_tests, example_batch, one_step

BILEVEL = [name for name in STRATEGIES.names() if issubclass(STRATEGIES.get(name), BilevelStrategy)]


def _trained(strategy: str, space: str, constant: bool) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    module = build_for_tests(strategy, space)
    if not constant:  # the steps as before: each also computes the other side's gradient, which is then zeroed
        module.architecture_constant = module.weights_constant = contextlib.nullcontext
    for _ in range(2):
        one_step(module, space)
    assert all(p.requires_grad for p in module.architecture_parameters())  # restored after the weight step
    return {k: v.clone() for k, v in module.state_dict().items() if isinstance(v, torch.Tensor)}


@pytest.mark.parametrize("space", SPACE_NAMES)
@pytest.mark.parametrize("strategy", BILEVEL)
def test_steps_with_the_other_side_constant_train_the_same_bits(strategy, space):
    try:
        constant = _trained(strategy, space, constant=True)
    except UnsupportedCombinationError:
        pytest.skip(f"{strategy} does not run on {space}")
    reference = _trained(strategy, space, constant=False)
    assert constant.keys() == reference.keys()
    different = [k for k in constant if not torch.equal(constant[k], reference[k])]
    assert not different, different


@pytest.mark.parametrize("constant, trained", [("architecture_constant", "weight_parameters"),
                                               ("weights_constant", "architecture_parameters")])
def test_a_constant_side_gets_no_gradient(constant, trained):
    """Inside the context the graph has no path to the constant side; outside it trains as before."""
    module = build_for_tests("darts", "nb201")
    x, _ = example_batch("nb201", 3)
    frozen = "architecture_parameters" if trained == "weight_parameters" else "weight_parameters"
    with getattr(module, constant)():
        out = module.relaxed_forward(x)
    assert all(p.requires_grad for p in getattr(module, frozen)())
    out.sum().backward()
    assert all(p.grad is None for p in getattr(module, frozen)())
    grads = [p.grad is not None for p in getattr(module, trained)()]
    # every architecture weight takes part in the relaxed forward; some weights may not (a classifier bias does)
    assert all(grads) if trained == "architecture_parameters" else any(grads)


TRAINING = [name for name in STRATEGIES.names() if STRATEGIES.get(name).trains]


@pytest.mark.parametrize("strategy", TRAINING)
def test_foreach_optimisers_train_the_same_bits_as_per_parameter_ones(strategy, monkeypatch):
    """``settings.FOREACH``: the multi-tensor optimisers (one operator per update) against the
    per-parameter loop, on NB201, two steps of every training strategy."""
    from lightning_nas.strategies import settings

    def trained(foreach: bool) -> dict[str, torch.Tensor]:
        monkeypatch.setattr(settings, "FOREACH", foreach)
        torch.manual_seed(0)
        module = build_for_tests(strategy, "nb201")
        for _ in range(2):
            one_step(module, "nb201")
        return {k: v.clone() for k, v in module.state_dict().items() if isinstance(v, torch.Tensor)}

    together, apart = trained(True), trained(False)
    assert [k for k in together if not torch.equal(together[k], apart[k])] == []
