"""The random-sampling baseline without weight sharing (Yu et al., ICLR 2020, Sec. 3).

The "search" is one architecture drawn uniformly from the space with a seeded generator; nothing
is trained. Its result is that architecture's ground truth: with a benchmark, the final selection
callback reports it; without one, train the architecture stand-alone (``--model
lightning_nas.strategies.Standalone --model.init_args.architecture '<arch>'``). Comparing a
search strategy with this baseline over many seeds is Yu et al.'s test of whether the search phase
beats chance.
"""
from __future__ import annotations

from typing import Any, Optional

import torch

from lightning_nas.registry import STRATEGIES
from lightning_nas.seeding import generator
from lightning_nas.strategies.base import FixedArchitecture


@STRATEGIES.register("random_sampling")
class RandomSampling(FixedArchitecture):
    """Args as ``SearchStrategy``; only ``space``, ``space_options`` and ``seed`` matter. Recipes
    set ``trainer.max_epochs: 0``: nothing is trained."""

    trains = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.automatic_optimization = False
        self.architecture = self.space.sample(generator(self.hparams.seed, "random-sampling"))
        self.supernet = self.build_network(arch=self.architecture)

    def training_step(self, batch: Any, batch_idx: int) -> Optional[torch.Tensor]:
        return None  # no weight sharing, no training: the baseline is a draw
