"""What the ranking, selection and decoding callbacks share: where the run lives, which
architectures to look at, and the evaluation batches."""
from __future__ import annotations

from pathlib import Path
from typing import Hashable, Optional

import torch
from pytorch_lightning import Trainer

from lightning_nas.benchmarks import Benchmark
from lightning_nas.nn.batchnorm import BNMode
from lightning_nas.seeding import generator
from lightning_nas.strategies.base import FixedArchitecture, SearchStrategy


def run_dir(trainer: Trainer) -> Path:
    return Path(trainer.default_root_dir)


def progress(trainer: Trainer, label: str) -> Optional[str]:
    """A progress-bar label for scoring, or None (no bar) when the run disabled progress bars."""
    return label if getattr(trainer, "progress_bar_callback", None) is not None else None


def sample_architectures(strategy, benchmark: Optional[Benchmark], count: int, seed_key: str,
                         from_policy: bool = False) -> tuple[list[Hashable], str]:
    """``count`` distinct architectures and where they came from.

    Uniform over the space; over the table's entries instead when the table covers only part of
    the space (a sampled ground truth); from the strategy's own policy when ``from_policy``.
    """
    gen = generator(strategy.hparams.seed, seed_key)
    space = strategy.space
    if isinstance(strategy, FixedArchitecture):  # its network holds one path: nothing else can be scored
        return [strategy.architecture], "the strategy's fixed architecture"
    if benchmark is not None and len(benchmark) < space.size:
        keys = sorted(benchmark.table())
        order = torch.randperm(len(keys), generator=gen)[:count]
        return [space.parse(keys[int(i)]) for i in order], f"table entries ({len(keys)} of {space.size} in the space)"
    method = getattr(strategy, "candidate_architectures", None)
    has_policy = method is not None and getattr(method, "__func__", None) is not SearchStrategy.candidate_architectures
    if from_policy and has_policy:
        return strategy.candidate_architectures(count, gen), f"{type(strategy).__name__} policy"
    return space.sample_many(min(count, space.size), gen), "uniform over the space"


def evaluation_batches(trainer: Trainer, device: torch.device, limit: Optional[int]) -> list:
    return list(trainer.datamodule.split_batches("val", device, limit=limit))


def calibration_inputs(trainer: Trainer, device: torch.device, bn_mode: str, count: int) -> list[torch.Tensor]:
    if BNMode(bn_mode) is not BNMode.RECALIBRATE:
        return []
    batch_size = trainer.datamodule.batch_size
    return [x for x, _ in trainer.datamodule.split_batches("weights", device, limit=count, batch_size=batch_size)]
