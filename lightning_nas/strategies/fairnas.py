"""FairNAS with strict fairness (Chu et al., ICCV 2021, Sec. 3.2, Alg. 1), over any space's decisions.

Each step builds m single-path models such that every option of every fair decision is used
equally often: a choice of n options picking k per path is served by concatenated random
permutations of its options, cut into m groups of k distinct options, so each option appears
exactly m*k/n times. m is the least common multiple of n / gcd(n, k) over the fair choices.
FairNAS is defined over operation (layer) choices; ``fair_over: all`` extends strict fairness to
input choices too (NB201: m = 5, each operation of each edge exactly once; the 2-node RNN space:
m = 4, each activation once and each input of node 2 twice), ``operations`` keeps it to operation
choices and draws input choices uniformly per path (the DARTS CNN space: m = 7 instead of 210; the
8-node RNN space: m = 4 instead of 840). ``auto`` (the default) is ``all`` where m stays within
``max_paths``, else ``operations``. All m models see the same batch and their gradients are
accumulated into one optimiser update (automatic optimisation of the summed loss).
"""
from __future__ import annotations

import math
from typing import Any, Hashable, Literal

import torch
import torch.nn.functional as F

from lightning_nas.errors import ArchitectureError, RecipeError, UnsupportedCombinationError
from lightning_nas.registry import STRATEGIES
from lightning_nas.spaces.decisions import Choice
from lightning_nas.strategies.base import Batch, SearchStrategy


def fair_path_count(choices: tuple[Choice, ...]) -> int:
    """The smallest m for which every option of every choice can be used equally often."""
    return math.lcm(*(len(c) // math.gcd(len(c), c.pick) for c in choices))


@STRATEGIES.register("fairnas")
class FairNAS(SearchStrategy):
    """Args:
        fair_over: ``all`` decisions, ``operations`` only (input choices uniform), or ``auto``.
        max_paths: the largest m (models per step) accepted; spaces needing more are declared
            unsupported (their strict fairness would cost m forward/backward passes per step).
        max_redraws: redraws of a step whose paths the space rejects (constrained spaces).
        Other defaults are those of ``SearchStrategy`` (SPOS' super-net settings), since FairNAS'
        own (lr 0.045, MobileNet space) do not transfer to cell spaces. The final architecture
        comes from shared-weight selection.
    """

    #: a rate and plain momentum other than the defaults: the tests see the recipe keys reach the settings
    test_options = {"optimizer.lr": 0.1, "optimizer.nesterov": False}

    def __init__(self, fair_over: Literal["auto", "all", "operations"] = "auto", max_paths: int = 16,
                 max_redraws: int = 100, **kwargs: Any) -> None:
        if fair_over not in ("auto", "all", "operations"):
            raise RecipeError(f"model.fair_over must be 'auto', 'all' or 'operations', got {fair_over!r}")
        super().__init__(**kwargs)
        choices = self.space.decisions
        operations = tuple(c for c in choices if c.kind == "operation")
        if fair_over == "auto":
            fair_over = "all" if fair_path_count(choices) <= max_paths or not operations else "operations"
        #: True for the choices whose options every step uses equally often
        self.fair = [fair_over == "all" or c.kind == "operation" for c in choices]
        self.paths = fair_path_count(tuple(c for c, fair in zip(choices, self.fair, strict=True) if fair))
        self.max_redraws = max_redraws
        if self.paths > max_paths:
            raise UnsupportedCombinationError(
                f"FairNAS cannot search the {self.hparams.space} space: strict fairness over its "
                f"{'decisions' if fair_over == 'all' else 'operation choices'} needs {self.paths} paths per step "
                f"(model.max_paths={max_paths})")

    def fair_architectures(self) -> list[Hashable]:
        """m architectures that together use each option of each decision equally often."""
        for _ in range(self.max_redraws):
            columns = [self._fair_column(c) if fair else self._uniform_column(c)
                       for c, fair in zip(self.space.decisions, self.fair, strict=True)]
            try:
                return [self.space.from_decisions([column[m] for column in columns]) for m in range(self.paths)]
            except ArchitectureError:
                continue
        raise ArchitectureError(f"FairNAS drew no valid set of {self.paths} {self.space.name} paths in "
                                f"{self.max_redraws} tries")

    def _fair_column(self, choice: Choice) -> list[tuple[int, ...]]:
        """m groups of ``choice.pick`` distinct options, each option in m*k/n of them."""
        n, k = len(choice), choice.pick
        while True:
            order = torch.cat([torch.randperm(n, generator=self.arch_generator) for _ in range(self.paths * k // n)])
            groups = [tuple(sorted(int(i) for i in order[m * k:(m + 1) * k])) for m in range(self.paths)]
            if all(len(set(g)) == k for g in groups):
                return groups

    def _uniform_column(self, choice: Choice) -> list[tuple[int, ...]]:
        """m independent uniform picks (input choices when fairness is over operations only)."""
        return [tuple(sorted(int(i) for i in torch.randperm(len(choice), generator=self.arch_generator)[:choice.pick]))
                for _ in range(self.paths)]

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        x, y = batch["weights"]
        archs = self.fair_architectures()
        self.last_architectures = archs
        total = x.new_zeros(())
        correct = x.new_zeros(())
        for k, arch in enumerate(archs):
            with self.carried(batch, "weights", stream=f"weights/path{k}"):  # each path carries its own state
                logits = self(x, arch)
            total = total + self.regularised(F.cross_entropy(logits, y))
            correct = correct + (logits.argmax(-1) == y).float().mean()
        self.log_train("train/loss", total / len(archs), len(y), on_step=True)
        self.log_train("train/accuracy", correct / len(archs) * 100, len(y))
        return total
