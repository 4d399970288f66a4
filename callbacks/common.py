"""What the ranking, selection and decoding callbacks share: where the run lives, which
architectures to look at, their ground truth, and the evaluation batches."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Hashable, Optional

import torch
from pytorch_lightning import Trainer

from lightning_nas.benchmarks import Benchmark, TableBenchmark, ground_truth_summary
from lightning_nas.errors import RecipeError
from lightning_nas.nn.batchnorm import BNMode
from lightning_nas.seeding import generator
from lightning_nas.spaces import SearchSpace
from lightning_nas.strategies.base import FixedArchitecture


def run_dir(trainer: Trainer) -> Path:
    return Path(trainer.default_root_dir)


def progress(trainer: Trainer, label: str) -> Optional[str]:
    """A progress-bar label for scoring, or None (no bar) when the run disabled progress bars."""
    return label if getattr(trainer, "progress_bar_callback", None) is not None else None


def check_count(key: str, value: Optional[int], minimum: int = 0, allow_none: bool = False) -> None:
    """One line naming the option when a count is out of range (0 is 'off' where ``minimum`` is 0)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise RecipeError(f"{key} must be an integer >= {minimum}, got {value!r}")


class GroundTruth:
    """A benchmark seen through a space: architectures are looked up by ``space.key(arch)``."""

    def __init__(self, benchmark: Optional[Benchmark], space: Any) -> None:
        self.benchmark, self.space = benchmark, space

    @property
    def has_table(self) -> bool:
        return isinstance(self.benchmark, TableBenchmark)

    def known(self, arch: Hashable) -> bool:
        return self.benchmark is not None and self.space.key(arch) in self.benchmark

    def value(self, arch: Hashable) -> float:
        return self.benchmark.query(self.space.key(arch))

    def regret(self, arch: Hashable) -> Optional[float]:
        return self.benchmark.regret(self.space.key(arch)) if self.has_table and self.known(arch) else None

    def summary(self, arch: Hashable) -> dict[str, Any]:
        """Ground truth, rank, regret and table size where known ({} otherwise)."""
        return ground_truth_summary(self.benchmark, self.space.key(arch)) if self.benchmark is not None else {}


def sample_architectures(strategy: Any, benchmark: Optional[Benchmark], count: int, seed_key: str,
                         from_policy: bool = False) -> tuple[list[Hashable], str]:
    """``count`` distinct architectures and where they came from.

    Uniform over the space; over the table's entries instead when a table covers only part of the
    space (a sampled ground truth); from the strategy's own policy when ``from_policy``.
    """
    gen = generator(strategy.hparams.seed, seed_key)
    space = strategy.space
    if isinstance(strategy, FixedArchitecture):  # its network holds one path: nothing else can be scored
        return [strategy.architecture], "the strategy's fixed architecture"
    if from_policy and strategy.has_policy:
        return strategy.candidate_architectures(count, gen), f"{type(strategy).__name__} policy"
    if isinstance(benchmark, TableBenchmark) and len(benchmark) < space.size:
        keys = sorted(benchmark.table())
        source = f"table entries ({len(keys)} of {space.size} in the space)"
        if type(space).key is SearchSpace.key:  # keys are text forms: draw table entries directly
            order = torch.randperm(len(keys), generator=gen)[:count]
            return [space.parse(keys[int(i)]) for i in order], source
        return _sample_in_table(space, benchmark, count, gen), source
    return space.sample_many(min(count, space.size), gen), "uniform over the space"


def sample_subspaces(strategy: Any, benchmark: Optional[Benchmark], count: int, seed_key: str,
                     draws_per_architecture: int = 50) -> dict[Hashable, list[Hashable]]:
    """Up to ``count`` distinct architectures of every sub-space (``space.subspace``), as Yu et al.'s
    baseline-v2 ranks ("we sample 200 architectures that share the same number of channels", Sec.
    4.5): uniform draws from the space (kept only when in the table, where a table covers part of the
    space), each added to its sub-space until that one holds ``count``. Distinct by benchmark key, as
    the pooled ranking draws (``_sample_in_table``): two spellings of one NB101 cell are one function
    with one ground truth, and ranking both would count the same cell twice. Draws stop when every
    sub-space seen is full, or after ``draws_per_architecture`` per architecture wanted by them (a
    rare sub-space may then hold fewer); sub-spaces are returned in ascending order."""
    gen = generator(strategy.hparams.seed, seed_key)
    space = strategy.space
    partial = isinstance(benchmark, TableBenchmark) and len(benchmark) < space.size
    groups: dict[Hashable, list[Hashable]] = {}
    seen: set[Hashable] = set()
    draws = kept = 0
    while draws < draws_per_architecture * count * max(1, len(groups)):
        draws += 1
        arch = space.sample(gen)
        key = space.key(arch)
        if key in seen or (partial and key not in benchmark):
            continue
        group = groups.setdefault(space.subspace(arch), [])
        if len(group) < count:
            seen.add(key)
            group.append(arch)
            kept += 1
        if kept == count * len(groups):
            break  # every sub-space seen is full
    return {g: groups[g] for g in sorted(groups)}


def _sample_in_table(space: Any, benchmark: TableBenchmark, count: int, gen: torch.Generator,
                     max_draws: int = 1_000_000) -> list[Hashable]:
    """Uniform draws from the space kept when their key is in the table (keys that are not text forms,
    such as NAS-Bench-101's graph hashes, cannot be parsed back into architectures)."""
    archs: list[Hashable] = []
    seen: set[str] = set()
    for _ in range(max_draws):
        if len(archs) >= min(count, len(benchmark)):
            break
        arch = space.sample(gen)
        key = space.key(arch)
        if key in benchmark and key not in seen:
            seen.add(key)
            archs.append(arch)
    return archs


class EvaluationBatches(list):
    """Validation batches; ``stateful`` when they are consecutive windows of one stream whose hidden
    state the model should carry (``PTBDataModule`` in stateful mode)."""

    stateful: bool = False


def evaluation_batches(trainer: Trainer, device: torch.device, limit: Optional[int]) -> EvaluationBatches:
    batches = EvaluationBatches(trainer.datamodule.split_batches("val", device, limit=limit))
    batches.stateful = bool(getattr(trainer.datamodule, "stateful", False))
    return batches


def calibration_inputs(trainer: Trainer, device: torch.device, bn_mode: str, count: int) -> list[torch.Tensor]:
    if BNMode(bn_mode) is not BNMode.RECALIBRATE:
        return []
    batch_size = trainer.datamodule.batch_size
    return [x for x, _ in trainer.datamodule.split_batches("weights", device, limit=count, batch_size=batch_size)]
