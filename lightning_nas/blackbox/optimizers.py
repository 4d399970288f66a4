"""Discrete black-box optimisers that drive a space's *decisions* (``space.sample``,
``space.to_decisions`` / ``space.from_decisions``), never a concrete space.

An optimiser proposes (``ask``) and learns the validation fitness of what it proposed (``tell``); it
never sees a test metric (``search.run`` keeps it away). All randomness comes from the one
``torch.Generator`` it is given (``lightning_nas.seeding.generator(seed, "blackbox", name, repetition)``),
so a seed fixes every proposal.

Settings follow Ying et al. 2019 (NAS-Bench-101, Sec. 5.1 and their released baselines, which
NAS-Bench-1Shot1's ``optimizers/regularized_evolution`` and ``optimizers/reinforce`` re-run with the
same values): regularised evolution with population 100 and tournament (sample) size 10, REINFORCE
with a categorical policy per decision, learning rate 0.1 and an exponential-moving-average baseline
of momentum 0.9.
"""
from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections import deque
from typing import Any, ClassVar, Optional, Sequence

import torch

from lightning_nas.errors import ArchitectureError
from lightning_nas.registry import ContractError, Registry

#: Black-box optimisers by short name (``--optimizer regularized_evolution``).
OPTIMIZERS: Registry = Registry("black-box optimiser")

#: attempts at a valid architecture before a space is declared unusable (a space whose random picks
#: are almost never valid is a bug, not bad luck)
MAX_ATTEMPTS = 10_000


class BlackBoxOptimizer(ABC):
    """Proposes architectures of ``space`` and learns from their validation fitness (higher is better)."""

    #: settings of a small, fast instance (the registry test runs every optimiser with them)
    test_options: ClassVar[dict[str, Any]] = {}
    #: the epoch budget at which to query what ``ask`` returned (None: the problem's final budget); a
    #: multi-fidelity optimiser sets it in ``ask`` and takes the problem's budgets as ``budgets``
    fidelity: Optional[int] = None

    def __init__(self, space: Any, generator: torch.Generator) -> None:
        self.space = space
        self.generator = generator

    @classmethod
    def check_contract(cls) -> None:
        abstract = sorted(getattr(cls, "__abstractmethods__", ()))
        if abstract:
            raise ContractError(f"black-box optimiser {cls.__name__}: it must define {', '.join(abstract)}")

    @abstractmethod
    def ask(self) -> Any:
        """The next architecture to query."""

    @abstractmethod
    def tell(self, arch: Any, fitness: float) -> None:
        """The validation fitness of ``arch`` (the last one asked); higher is better."""

    def settings(self) -> dict[str, Any]:
        """The optimiser's settings as recorded with its trajectories."""
        return {}

    def _uniform(self, high: int) -> int:
        return int(torch.randint(high, (1,), generator=self.generator))

    def _rand(self) -> float:
        return float(torch.rand((), generator=self.generator))


@OPTIMIZERS.register("random_search")
class RandomSearch(BlackBoxOptimizer):
    """Uniform draws with replacement (``space.sample``): every query is a fresh draw, as in Ying et al.'s
    random-search baseline, so a repeated cell costs its training time again."""

    def ask(self) -> Any:
        return self.space.sample(self.generator)

    def tell(self, arch: Any, fitness: float) -> None:
        pass


def _other_pick(choice: Any, current: tuple[int, ...], draw: Any) -> tuple[int, ...]:
    """A uniformly drawn pick of ``choice`` other than ``current`` (an operation among the others, or
    another subset of inputs of the same size)."""
    subsets = [s for s in itertools.combinations(range(len(choice)), choice.pick) if s != tuple(current)]
    return subsets[draw(len(subsets))] if subsets else tuple(current)


@OPTIMIZERS.register("regularized_evolution")
class RegularizedEvolution(BlackBoxOptimizer):
    """Regularised (aging) evolution, Real et al. 2019, Algorithm 1, with Ying et al. 2019's settings.

    The population starts as ``population`` uniform draws; then every cycle draws ``sample_size``
    members with replacement, mutates the fittest of them (by validation) into a child, queries it,
    appends it and removes the *oldest* member (aging, not the worst: Real et al. Sec. 3).

    Mutation, Ying et al.'s released example (``mutate_spec`` of the nasbench repository: each
operation resampled to a *different* one with probability mutation_rate / operation spots, so one
operation changes in expectation; the cell redrawn from the parent until it is valid; a child equal
to its parent is kept) stated on decisions: every ``operation`` decision is redrawn to another pick
with probability ``mutation_rate / number of operation decisions``, every ``input`` decision with
``input_mutation_rate / number of input decisions`` (one input decision in expectation; their
example flips each of NB101's 21 edge spots with probability 1/7, about 3 flips, most of them
pruned away, which on decisions is ``input_mutation_rate=3``).

    Args:
        population: P, 100 in Ying et al. On a small table scale it down (the digits recipe uses 20 of
            729 cells: P = 100 would spend a third of a 300-query budget on the random start).
        sample_size: S, the tournament size, 10 in Ying et al.
        mutation_rate: expected number of operation decisions changed per mutation, 1.0 in Ying et al.
        input_mutation_rate: expected number of input decisions changed (default: ``mutation_rate``).
    """

    test_options = {"population": 4, "sample_size": 2}

    def __init__(self, space: Any, generator: torch.Generator, population: int = 100, sample_size: int = 10,
                 mutation_rate: float = 1.0, input_mutation_rate: Optional[float] = None) -> None:
        super().__init__(space, generator)
        if population < 1 or not 1 <= sample_size:
            raise ValueError(f"regularized_evolution: population ({population}) and sample_size ({sample_size}) must be >= 1")
        input_mutation_rate = mutation_rate if input_mutation_rate is None else input_mutation_rate
        counts = {kind: sum(1 for c in space.decisions if c.kind == kind) for kind in ("operation", "input")}
        for name, rate, kind in (("mutation_rate", mutation_rate, "operation"),
                                 ("input_mutation_rate", input_mutation_rate, "input")):
            if counts[kind] and not 0 < rate <= counts[kind]:
                raise ValueError(f"regularized_evolution: {name} must lie in (0, {counts[kind]}] (the number of "
                                 f"{kind} decisions), got {rate}")
        self.population_size, self.sample_size, self.mutation_rate = population, sample_size, mutation_rate
        self.input_mutation_rate = input_mutation_rate
        self.probabilities = [(mutation_rate if c.kind == "operation" else input_mutation_rate) / counts[c.kind]
                              for c in space.decisions]
        self.population: deque[tuple[Any, float]] = deque()
        self.told = 0

    def settings(self) -> dict[str, Any]:
        return {"population": self.population_size, "sample_size": self.sample_size,
                "mutation_rate": self.mutation_rate, "input_mutation_rate": self.input_mutation_rate}

    def ask(self) -> Any:
        if self.told < self.population_size:
            return self.space.sample(self.generator)
        members = list(self.population)
        sample = [members[self._uniform(len(members))] for _ in range(self.sample_size)]
        parent = max(sample, key=lambda member: member[1])[0]  # the first of equals: draws decide ties
        return self.mutate(parent)

    def mutate(self, parent: Any) -> Any:
        choices = self.space.decisions
        picks = self.space.to_decisions(parent)
        for _ in range(MAX_ATTEMPTS):
            child = [(_other_pick(c, p, self._uniform) if self._rand() < probability else p)
                     for c, p, probability in zip(choices, picks, self.probabilities, strict=True)]
            try:
                return self.space.from_decisions(child)
            except ArchitectureError:
                continue
        raise RuntimeError(f"regularized_evolution: no valid mutation of {parent} in {MAX_ATTEMPTS} attempts")

    def tell(self, arch: Any, fitness: float) -> None:
        self.population.append((arch, float(fitness)))
        self.told += 1
        if len(self.population) > self.population_size:
            self.population.popleft()


class _MovingAverage:
    """Exponential moving average with the bias correction of Ying et al.'s baseline (numerator and
    denominator both decay, so the first value is the first reward, not a tenth of it)."""

    def __init__(self, momentum: float) -> None:
        self.momentum, self.numerator, self.denominator = momentum, 0.0, 0.0

    def update(self, value: float) -> None:
        self.numerator = self.momentum * self.numerator + (1 - self.momentum) * value
        self.denominator = self.momentum * self.denominator + (1 - self.momentum)

    @property
    def value(self) -> float:
        return self.numerator / self.denominator if self.denominator else 0.0


@OPTIMIZERS.register("reinforce")
class Reinforce(BlackBoxOptimizer):
    """REINFORCE (Williams 1992) as Ying et al. 2019 ran it on NAS-Bench-101.

    The policy is an independent categorical distribution per decision (over its options, or over the
    subsets of inputs a decision picks), logits initialised to zero (uniform). Each query samples one
    architecture (an invalid combination is redrawn), its reward r is the validation fitness
    (``TableProblem.fitness``: accuracy as a fraction), the baseline b is a moving average of the
    rewards with momentum ``baseline_momentum`` updated with r first, and the logits take one step of
    gradient ascent on (r - b) log p(architecture): logits_d += lr (r - b) (onehot(pick_d) - softmax(logits_d)).

    Args:
        lr: learning rate of the logits, 0.1 (Ying et al.; NAS-Bench-1Shot1's re-run).
        baseline_momentum: decay of the reward baseline, 0.9 (ibid.).
    """

    test_options = {"lr": 0.5}

    def __init__(self, space: Any, generator: torch.Generator, lr: float = 0.1, baseline_momentum: float = 0.9) -> None:
        super().__init__(space, generator)
        if lr <= 0 or not 0 <= baseline_momentum < 1:
            raise ValueError(f"reinforce: need lr > 0 and 0 <= baseline_momentum < 1, got {lr}, {baseline_momentum}")
        self.lr, self.baseline = lr, _MovingAverage(baseline_momentum)
        self.subsets = [list(itertools.combinations(range(len(c)), c.pick)) for c in space.decisions]
        self.logits = [torch.zeros(len(s), dtype=torch.float64) for s in self.subsets]
        self.last: tuple[Any, list[int]] | None = None

    def settings(self) -> dict[str, Any]:
        return {"lr": self.lr, "baseline_momentum": self.baseline.momentum}

    def probabilities(self) -> list[torch.Tensor]:
        return [torch.softmax(logit, dim=0) for logit in self.logits]

    def ask(self) -> Any:
        probabilities = self.probabilities()
        for _ in range(MAX_ATTEMPTS):
            drawn = [int(torch.multinomial(p, 1, generator=self.generator)) for p in probabilities]
            try:
                arch = self.space.from_decisions([s[i] for s, i in zip(self.subsets, drawn, strict=True)])
            except ArchitectureError:
                continue
            self.last = (arch, drawn)
            return arch
        raise RuntimeError(f"reinforce: no valid architecture in {MAX_ATTEMPTS} draws from the policy")

    def tell(self, arch: Any, fitness: float) -> None:
        if self.last is None or self.last[0] != arch:
            raise ValueError("reinforce: tell() must follow ask() with the architecture it returned")
        self.baseline.update(float(fitness))
        advantage = float(fitness) - self.baseline.value
        for logit, probability, index in zip(self.logits, self.probabilities(), self.last[1], strict=True):
            gradient = -probability
            gradient[index] += 1.0
            logit += self.lr * advantage * gradient
        self.last = None


def build_optimizer(name: str, space: Any, generator: torch.Generator, options: dict[str, Any] | None = None,
                    budgets: Sequence[Optional[int]] = (None,)) -> BlackBoxOptimizer:
    """``OPTIMIZERS.get(name)(space, generator, **options)``, plus the problem's epoch ``budgets``
    (``TableProblem.budgets``) for an optimiser that takes them; a bad option is one line naming it."""
    import inspect

    cls = OPTIMIZERS.get(name)
    options = dict(options or {})
    parameters = inspect.signature(cls.__init__).parameters
    allowed = [p for p in parameters if p not in ("self", "space", "generator", "budgets")]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"optimizer_options.{unknown[0]}: unknown option of {name}; valid: {', '.join(allowed) or 'none'}")
    if "budgets" in parameters:
        options["budgets"] = tuple(budgets)
    return cls(space, generator, **options)


def names() -> Sequence[str]:
    return OPTIMIZERS.names()
