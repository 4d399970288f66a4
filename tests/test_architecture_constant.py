"""The weight step treats the architecture as a constant (``BilevelStrategy.architecture_constant``,
issue 25): autograd records no path back to it, so the backward skips its gradient. The weights and
architecture it trains are bit for bit those of a weight step that also computed (and then discarded)
the architecture's gradient, on every space, for every bilevel strategy."""
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
    if not constant:  # the weight step as before: alpha's gradient computed, then zeroed by the next arch step
        module.architecture_constant = contextlib.nullcontext
    for _ in range(2):
        one_step(module, space)
    assert all(p.requires_grad for p in module.architecture_parameters())  # restored after the weight step
    return {k: v.clone() for k, v in module.state_dict().items() if isinstance(v, torch.Tensor)}


@pytest.mark.parametrize("space", SPACE_NAMES)
@pytest.mark.parametrize("strategy", BILEVEL)
def test_weight_step_with_a_constant_architecture_trains_the_same_bits(strategy, space):
    try:
        constant = _trained(strategy, space, constant=True)
    except UnsupportedCombinationError:
        pytest.skip(f"{strategy} does not run on {space}")
    reference = _trained(strategy, space, constant=False)
    assert constant.keys() == reference.keys()
    different = [k for k in constant if not torch.equal(constant[k], reference[k])]
    assert not different, different


def test_the_weight_step_computes_no_architecture_gradient():
    module = build_for_tests("darts", "nb201")
    x, _ = example_batch("nb201", 3)
    with module.architecture_constant():
        out = module.weight_forward(x)
    assert all(p.requires_grad for p in module.architecture_parameters())
    out.sum().backward()
    assert all(p.grad is None for p in module.architecture_parameters())
    assert any(p.grad is not None for p in module.weight_parameters())
