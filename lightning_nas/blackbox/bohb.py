"""BOHB over architectures (Falkner et al. 2018): a discrete black-box optimiser on a table benchmark,
as NAS-Bench-101 (Ying et al. 2019, Sec. 5.1) and NAS-Bench-1Shot1 (Zela et al. 2020, Sec. 5.4 and
its ``optimizers/bohb`` baseline) ran it.

The space's decisions are the configuration space: one ConfigSpace categorical hyperparameter per
``Choice``, its values the picks of the choice (an operation, or a subset of inputs joined by ``+``).
Every decision exists in every architecture of the contract's spaces, so the space is flat, with no
conditions, like Ying et al.'s NB101 space (21 edge bits, 5 operations) and 1Shot1's (per choice block
an operation and a parent set); a combination the space rejects (``from_decisions`` raises: an NB101
cell with more than 9 edges, or disconnected) is told to the model as a failed evaluation (loss +inf,
hpbandster's treatment of a crashed run) at no simulated cost and not queried, as Ying et al.'s
released wrappers returned error 1 at cost 0 for an invalid cell (``record_invalid`` of
automl/nas_benchmarks).

The model is hpbandster's own config generator (``hpbandster.optimizers.config_generators.bohb.BOHB``:
a TPE-like pair of kernel density estimators on the best ``top_n_percent`` and the rest of the
evaluations of the largest budget with enough of them, proposals maximising their ratio over
``num_samples`` draws, a ``random_fraction`` of uniform draws), the component Ray Tune's
``TuneBOHB`` uses for the tuning experiments (``lightning_nas/tuning``). The schedule around it is
Hyperband (Li et al. 2017, Alg. 1) with hpbandster's bracket sizes, run synchronously with one worker
(each successive-halving stage complete before the next begins, a proposal drawn only when the
previous evaluation has been told, as one hpbandster worker would), in this module rather than
through hpbandster's Pyro name server: a table look-up needs no workers, and one process keeps every
proposal a function of the seed.

Fidelity: the problem's epoch budgets (``TableProblem.budgets``: NAS-Bench-101's 4, 12, 36 and 108
epochs, each a separate training with its own validation accuracy and training time; Ying et al. and
1Shot1's baseline: min budget 4, max 108, eta 3). A table of one training protocol (the NB201 CSVs,
the complete digits table) has a single fidelity: every bracket is then one configuration at the
final budget, and BOHB is the density-model Bayesian optimisation alone.

Determinism: ConfigSpace samples with its own seeded generator and hpbandster's model draws from
numpy's global generator, which this optimiser swaps for its own state around every call (and puts
back), so other numpy users neither disturb nor are disturbed by it; both seeds come from the
optimiser's ``torch.Generator``.
"""
from __future__ import annotations

import itertools
import logging
import math
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional, Sequence

import numpy as np
import torch

from lightning_nas.blackbox.optimizers import MAX_ATTEMPTS, OPTIMIZERS, BlackBoxOptimizer
from lightning_nas.errors import ArchitectureError


@dataclass
class _Job:
    """What hpbandster's config generator reads of a finished evaluation (its ``Job``): the loss (None:
    failed), the budget and the configuration."""

    result: Optional[dict]
    kwargs: dict
    exception: None = None
    id: tuple = field(default=())


def _joined(choice: Any, subset: Sequence[int]) -> str:
    return "+".join(choice.options[i] for i in subset)


def bracket_sizes(s_max: int, eta: int) -> list[list[int]]:
    """Configurations per stage of each of the ``s_max + 1`` Hyperband brackets, most exploratory first
    (hpbandster's ``get_next_iteration``: n0 = floor((s_max + 1) / (s + 1)) eta^s, then n0 eta^-i per
    stage, at least 1)."""
    out = []
    for s in range(s_max, -1, -1):
        n0 = ((s_max + 1) // (s + 1)) * eta ** s
        out.append([max(int(n0 * eta ** -i), 1) for i in range(s + 1)])
    return out


@OPTIMIZERS.register("bohb")
class BOHB(BlackBoxOptimizer):
    """BOHB over the space's decisions, with the problem's epoch budgets as fidelity.

    Args:
        budgets: the problem's epoch budgets, ascending (given by ``search.run``; ``(None,)``: one).
        min_budget: the smallest budget used (default: the problem's smallest; Ying et al.: 4 epochs).
        eta: successive halving keeps the best 1/eta of a stage for the next budget (3: Ying et al.,
            1Shot1's HB/BOHB baselines; the NB101 budgets 4, 12, 36, 108 grow by 3).
        top_n_percent, num_samples, random_fraction, bandwidth_factor, min_bandwidth,
            min_points_in_model: hpbandster's BOHB model with hpbandster's defaults (15, 64, 1/3, 3,
            1e-3, and the number of hyperparameters + 1); 1Shot1's HB baseline (``run_hyperband.py``)
            likewise sets only the budgets and eta.
    """

    test_options = {"num_samples": 16}

    def __init__(self, space: Any, generator: torch.Generator, budgets: Sequence[Optional[int]] = (None,),
                 min_budget: Optional[int] = None, eta: int = 3, top_n_percent: int = 15, num_samples: int = 64,
                 random_fraction: float = 1 / 3, bandwidth_factor: float = 3.0, min_bandwidth: float = 1e-3,
                 min_points_in_model: Optional[int] = None) -> None:
        super().__init__(space, generator)
        try:
            import ConfigSpace
            from hpbandster.optimizers.config_generators.bohb import BOHB as ConfigGenerator
        except ImportError as error:
            raise ValueError(f"bohb: needs hpbandster and ConfigSpace (pinned in requirements.txt): {error}") from None
        budgets = tuple(budgets) or (None,)
        if min_budget is not None and min_budget not in budgets:
            raise ValueError(f"bohb: min_budget {min_budget} is not an epoch budget of the problem; it has "
                             f"{[b for b in budgets if b is not None] or 'one fidelity'}")
        if isinstance(eta, bool) or not isinstance(eta, int) or eta < 2:
            raise ValueError(f"bohb: eta must be an integer >= 2, got {eta!r}")
        self.rungs = budgets[budgets.index(min_budget):] if min_budget is not None else budgets
        self.eta = eta
        self.options = {"top_n_percent": top_n_percent, "num_samples": num_samples, "random_fraction": random_fraction,
                        "bandwidth_factor": bandwidth_factor, "min_bandwidth": min_bandwidth,
                        "min_points_in_model": min_points_in_model}
        self.subsets = [list(itertools.combinations(range(len(c)), c.pick)) for c in space.decisions]
        labels = [c.label for c in space.decisions]
        self.names = labels if len(set(labels)) == len(labels) else [f"{i} {label}" for i, label in enumerate(labels)]
        config_seed, numpy_seed = (int(torch.randint(2 ** 31 - 1, (1,), generator=generator)) for _ in range(2))
        self.configspace = ConfigSpace.ConfigurationSpace(seed=config_seed)
        for name, choice, subsets in zip(self.names, space.decisions, self.subsets, strict=True):
            if len(subsets) > 1:  # a decision with one possible pick is a constant, not a hyperparameter
                self.configspace.add(ConfigSpace.CategoricalHyperparameter(name, [_joined(choice, s) for s in subsets]))
        self._numpy_state = np.random.RandomState(numpy_seed).get_state()
        with self._own_numpy_stream():
            self.model = ConfigGenerator(self.configspace, logger=logging.getLogger(__name__), **self.options)
        self.brackets = bracket_sizes(len(self.rungs) - 1, eta)
        self.iteration = 0            # Hyperband iterations started
        self.sizes: list[int] = []    # configurations per stage of the current bracket
        self.stage = 0
        self.stage_rungs: tuple[Optional[int], ...] = ()
        self.results: list[tuple[dict, float]] = []   # (configuration, loss) of the current stage
        self.promoted: list[dict] = []                # the current stage's configurations (stages > 0)
        self.pending: Optional[tuple[dict, Any]] = None
        self.invalid = 0                              # proposals the space rejected (told as failed)

    def settings(self) -> dict[str, Any]:
        return {"budgets": list(self.rungs), "eta": self.eta,
                **self.options, "min_points_in_model": self.model.min_points_in_model}

    @contextmanager
    def _own_numpy_stream(self) -> Iterator[None]:
        outer = np.random.get_state()
        np.random.set_state(self._numpy_state)
        try:
            with warnings.catch_warnings():  # ConfigSpace 1.x deprecations of the calls hpbandster makes
                warnings.simplefilter("ignore")
                yield
        finally:
            self._numpy_state = np.random.get_state()
            np.random.set_state(outer)

    def _budget(self) -> float:
        rung = self.stage_rungs[self.stage]
        return 1.0 if rung is None else float(rung)

    def _decode(self, config: dict) -> Any:
        picks = []
        for name, choice, subsets in zip(self.names, self.space.decisions, self.subsets, strict=True):
            values = [_joined(choice, s) for s in subsets]
            picks.append(subsets[values.index(config[name])] if len(subsets) > 1 else subsets[0])
        return self.space.from_decisions(picks)

    def _tell_model(self, config: dict, loss: Optional[float]) -> None:
        job = _Job(None if loss is None else {"loss": loss}, {"budget": self._budget(), "config": dict(config)})
        with self._own_numpy_stream():
            self.model.new_result(job)

    def _next_stage(self) -> None:
        """After a complete stage: promote its best 1/eta (the first of equals) or start the next bracket."""
        if self.sizes and self.stage + 1 < len(self.sizes):
            order = sorted(range(len(self.results)), key=lambda i: self.results[i][1])
            self.promoted = [self.results[i][0] for i in order[:self.sizes[self.stage + 1]]]
            self.stage += 1
        else:
            self.sizes = self.brackets[self.iteration % len(self.brackets)]
            self.stage_rungs = self.rungs[len(self.rungs) - len(self.sizes):]
            self.stage, self.promoted = 0, []
            self.iteration += 1
        self.results = []

    def ask(self) -> Any:
        if not self.sizes or len(self.results) == self.sizes[self.stage]:
            self._next_stage()
        self.fidelity = self.stage_rungs[self.stage]
        if self.stage > 0:
            config = self.promoted[len(self.results)]
            self.pending = (config, self._decode(config))
            return self.pending[1]
        for _ in range(MAX_ATTEMPTS):
            with self._own_numpy_stream():
                config, _ = self.model.get_config(self._budget())
            try:
                arch = self._decode(config)
            except ArchitectureError:
                self.invalid += 1
                self._tell_model(config, None)  # a failed evaluation: loss +inf, no query, no cost
                continue
            self.pending = (config, arch)
            return arch
        raise RuntimeError(f"bohb: no valid architecture in {MAX_ATTEMPTS} proposals")

    def tell(self, arch: Any, fitness: float) -> None:
        if self.pending is None or self.pending[1] != arch:
            raise ValueError("bohb: tell() must follow ask() with the architecture it returned")
        loss = -float(fitness)
        if not math.isfinite(loss):
            raise ValueError(f"bohb: the fitness of {arch} is {fitness}, not a finite number")
        self._tell_model(self.pending[0], loss)
        self.results.append((self.pending[0], loss))
        self.pending = None
