"""``model.compile`` of the relaxed strategies (issue 25: capture the launch-bound relaxed step on a
GPU, off by default): on CPU, with dynamo's ``eager`` backend (the captured graph run by the same
operators), a DARTS and a PC-DARTS step give the loss and gradients of the uncompiled step bit for
bit; unusable settings are one error line naming the key."""
from __future__ import annotations

import pytest
import torch

from lightning_nas.errors import RecipeError
from lightning_nas.strategies import DARTS, GDAS, PCDARTS

TINY = dict(network={"C": 4, "N": 1, "affine": False}, num_classes=3, in_channels=1)


def step(cls, **options) -> tuple[torch.Tensor, list[torch.Tensor]]:
    torch.manual_seed(0)
    strategy = cls(space="nb201", seed=0, **TINY, **options)
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(8, 1, 4, 4, generator=gen), torch.randint(3, (8,), generator=gen)
    loss = strategy.architecture_loss(x, y)
    params = strategy.architecture_parameters() + strategy.weight_parameters()
    return loss.detach(), [g for g in torch.autograd.grad(loss, params, allow_unused=True) if g is not None]


@pytest.mark.slow  # dynamo's tracing: ~30 s per strategy on one loaded core
@pytest.mark.parametrize("cls", [DARTS, PCDARTS])
def test_compiled_step_equals_the_uncompiled_step(cls) -> None:
    torch._dynamo.reset()
    options = {"partial_channels": 2} if cls is PCDARTS else {}
    loss, grads = step(cls, **options)
    compiled_loss, compiled_grads = step(cls, compile="eager", **options)
    assert torch.equal(loss, compiled_loss)
    assert len(grads) == len(compiled_grads) and all(torch.equal(a, b) for a, b in zip(grads, compiled_grads, strict=True))


def test_unusable_compile_settings_are_one_line_errors() -> None:
    with pytest.raises(RecipeError, match="model.compile must be one of"):
        DARTS(space="nb201", compile="fast", **TINY)
    with pytest.raises(RecipeError, match="first-order"):
        DARTS(space="nb201", compile="default", unrolled=True, **TINY)
    with pytest.raises(RecipeError, match="GDAS"):
        GDAS(space="nb201", compile="eager", **TINY)
    strategy = DARTS(space="nb201", compile="reduce-overhead", **TINY)
    with pytest.raises(RecipeError, match="needs a CUDA device"):
        strategy.relaxed_forward(torch.randn(2, 1, 4, 4))
