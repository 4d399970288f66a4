"""What a tuning experiment is: a tuning file (scheduler, fidelity, objective) naming a configuration
space file (hyperparameters, each mapped onto recipe keys).

NAS-Bench-1Shot1 (Zela et al., ICLR 2020), Sec. 5.4 and App. F: BOHB tunes the hyperparameters of a
one-shot optimiser's search over the configuration spaces CS1 = {L2, CO prob}, CS2 = CS1 + {lr},
CS3 = CS2 + {momentum, CO len, batch size, grad clip, arch lr, arch L2}; the fidelity is the number
of search epochs (min 25, max 100, eta 2); the objective is the benchmark's validation error of the
run's answer (never the one-shot validation, never the test). The ranges are those of the authors'
BOHB worker (``optimizers/bohb_one_shot/worker.py`` of automl/nasbench-1shot1); the paper lists only
the names.

A configuration space file::

    parameters:
      weight_decay:                         # a name of the tuner's own (the one in reports)
        keys: [model.init_args.optimizer.weight_decay]   # recipe keys it sets (several: tied)
        type: float                         # float | int | choice
        lower: 1.0e-5
        upper: 1.0e-3
        log: true
        default: 3.0e-4                     # optional; where all have one, the first trial runs the defaults
    fixed: {data.init_args.cutout: 16}      # optional: recipe values every trial gets

Kept free of Ray (the Ray parts live in ``runner``) so that parsing and the one-line errors are cheap
to test.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from lightning_nas.experiments.design import ExperimentError

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SCHEDULERS = ("bohb", "asha", "hyperband")
FIDELITY_MODES = ("continue",)


class TuningError(ExperimentError):
    """A malformed tuning or configuration space file; the message names the file and the entry."""


@dataclass(frozen=True)
class Parameter:
    """One hyperparameter of a configuration space and the recipe keys it sets."""

    name: str
    keys: tuple[str, ...]
    type: str  # float | int | choice
    lower: Optional[float] = None
    upper: Optional[float] = None
    log: bool = False
    choices: tuple[Any, ...] = ()
    default: Any = None

    def probe(self) -> Any:
        """A value inside the range (the default where given): what the recipe check parses."""
        if self.default is not None:
            return self.default
        if self.type == "choice":
            return self.choices[0]
        value = math.sqrt(self.lower * self.upper) if self.log else (self.lower + self.upper) / 2
        return int(round(value)) if self.type == "int" else value

    def domain(self) -> Any:
        """The Ray Tune sampling domain (``TuneBOHB`` converts it into a ConfigSpace hyperparameter)."""
        from ray import tune

        if self.type == "choice":
            return tune.choice(list(self.choices))
        if self.type == "int":  # Tune's integer upper bounds are exclusive
            upper = int(self.upper) + 1
            return tune.lograndint(int(self.lower), upper) if self.log else tune.randint(int(self.lower), upper)
        return tune.loguniform(self.lower, self.upper) if self.log else tune.uniform(self.lower, self.upper)

    def value(self, sampled: Any) -> Any:
        """A sampled value as a plain Python value (BOHB returns numpy scalars)."""
        if self.type == "int":
            return int(sampled)
        if self.type == "float":
            return float(sampled)
        return sampled.item() if hasattr(sampled, "item") else sampled


@dataclass(frozen=True)
class ConfigurationSpace:
    path: str
    parameters: tuple[Parameter, ...]
    fixed: dict[str, Any] = field(default_factory=dict)

    def overrides(self, values: dict[str, Any]) -> list[str]:
        """``--key value`` arguments of one configuration (fixed values first)."""
        args: list[str] = []
        for key, value in self.fixed.items():
            args += [f"--{key}", _text(value)]
        by_name = {p.name: p for p in self.parameters}
        for name, value in values.items():
            for key in by_name[name].keys:
                args += [f"--{key}", _text(by_name[name].value(value))]
        return args

    def defaults(self) -> Optional[dict[str, Any]]:
        """The default configuration, where every parameter has a default (else None)."""
        if any(p.default is None for p in self.parameters):
            return None
        return {p.name: p.default for p in self.parameters}


@dataclass(frozen=True)
class Objective:
    """The benchmark's validation metric of a run's answer (NAS-Bench-1Shot1 Sec. 5.4: BOHB optimises
    the NB101 validation error of the architecture each configuration's search returns).

    table: a table (path, or name of a shipped one) with the validation metric per architecture.
    metric: its column (``val_accuracy_mean``); a test column is refused.
    mode: ``max`` for accuracies, ``min`` for errors and losses.
    on_demand: a tabulation recipe with ``evaluate: [val]`` and the table's protocol: an answer the
        table lacks (or every answer, without a table) is trained stand-alone with it, once, and cached
        in ``EXPERIMENT_DIR/validation_cache.jsonl``.
    times: a CSV with each architecture's training time (``train_seconds_mean``), for the simulated
        wall-clock (t_sim = t_search + t_train, Sec. 5.4); without it, the on-demand training time.
    benchmark: instead of a CSV, a black-box problem's tables (``{class_path:
        lightning_nas.blackbox.NB101Tables, init_args: {path, space, space_options}}``): the answer is
        parsed by that space and looked up by its key, its validation metric and training time are the
        problem's (NAS-Bench-1Shot1's objective: NB101's validation accuracy at 108 epochs, mean over
        the repeats, of the 1Shot1 cell each search returns); ``metric`` is then the problem's own.
    """

    table: Optional[str] = None
    metric: str = "val_accuracy_mean"
    mode: str = "max"
    on_demand: Optional[str] = None
    times: Optional[str] = None
    benchmark: Optional[dict] = None


@dataclass(frozen=True)
class Tuning:
    path: str
    space: ConfigurationSpace
    objective: Objective
    scheduler: str = "bohb"
    num_samples: int = 8
    min_epochs: int = 25
    eta: int = 2
    seed: int = 0
    fidelity: str = "continue"

    def rungs(self, max_epochs: int) -> list[int]:
        """The search-epoch budgets a trial reports at: min, min*eta, ..., max (Hyperband's rungs).
        ``max_epochs`` (the recipe's ``trainer.max_epochs``) must be min * eta^k."""
        rungs, epochs = [], self.min_epochs
        while epochs < max_epochs:
            rungs.append(epochs)
            epochs *= self.eta
        if epochs != max_epochs:
            raise TuningError(f"{self.path}: trainer.max_epochs {max_epochs} (the maximum fidelity) must be "
                              f"min_epochs {self.min_epochs} times a power of eta {self.eta} "
                              f"(e.g. {rungs[-1] if rungs else self.min_epochs} or {epochs}; the paper: 25, 100, eta 2)")
        return rungs + [max_epochs]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def _load_yaml(path: Path, what: str) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except OSError as error:
        raise TuningError(f"{what} {path}: cannot be read ({error.strerror})") from None
    except yaml.YAMLError as error:
        raise TuningError(f"{what} {path}: not valid YAML ({' '.join(str(error).split())[:160]})") from None
    if not isinstance(data, dict):
        raise TuningError(f"{what} {path}: expected a mapping at the top level")
    return data


def _unknown(where: str, given: dict[str, Any], allowed: tuple[str, ...]) -> None:
    extra = sorted(set(given) - set(allowed))
    if extra:
        raise TuningError(f"{where}: unknown entry {extra[0]!r}; valid: {', '.join(allowed)}")


def parse_parameter(where: str, name: str, entry: Any) -> Parameter:
    if not _NAME.match(str(name)):
        raise TuningError(f"{where}: parameter name {name!r} must be a plain identifier (weight_decay)")
    if not isinstance(entry, dict):
        raise TuningError(f"{where}: parameter {name}: expected a mapping with keys, type, lower/upper or choices")
    here = f"{where}: parameter {name}"
    _unknown(here, entry, ("keys", "type", "lower", "upper", "log", "choices", "default"))
    keys = entry.get("keys")
    keys = [keys] if isinstance(keys, str) else keys
    if not keys or not all(isinstance(k, str) and _KEY.match(k) for k in keys):
        raise TuningError(f"{here}: keys must list recipe keys (e.g. [model.init_args.optimizer.lr]), got {keys!r}")
    kind = entry.get("type", "float")
    if kind not in ("float", "int", "choice"):
        raise TuningError(f"{here}: type {kind!r} is not one of float, int, choice")
    if kind == "choice":
        choices = entry.get("choices")
        if not isinstance(choices, list) or not choices:
            raise TuningError(f"{here}: type choice needs a non-empty list of choices")
        return Parameter(name, tuple(keys), kind, choices=tuple(choices), default=entry.get("default"))
    lower, upper, log = entry.get("lower"), entry.get("upper"), bool(entry.get("log", False))
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lower, upper)) or not lower < upper:
        raise TuningError(f"{here}: needs numbers lower < upper, got lower={lower!r}, upper={upper!r}")
    if log and lower <= 0:
        raise TuningError(f"{here}: a log scale needs lower > 0, got {lower}")
    default = entry.get("default")
    if default is not None and not lower <= default <= upper:
        raise TuningError(f"{here}: default {default} lies outside [{lower}, {upper}]")
    return Parameter(name, tuple(keys), kind, float(lower), float(upper), log, default=default)


def load_space(path: str | Path) -> ConfigurationSpace:
    path = Path(path)
    data = _load_yaml(path, "configuration space")
    _unknown(str(path), data, ("parameters", "fixed"))
    entries = data.get("parameters")
    if not isinstance(entries, dict) or not entries:
        raise TuningError(f"{path}: 'parameters' must map names to hyperparameters (see docs/tuning.md)")
    parameters = tuple(parse_parameter(str(path), name, entry) for name, entry in entries.items())
    fixed = data.get("fixed") or {}
    if not isinstance(fixed, dict) or not all(isinstance(k, str) and _KEY.match(k) for k in fixed):
        raise TuningError(f"{path}: 'fixed' must map recipe keys to values (data.init_args.cutout: 16)")
    keys = [k for p in parameters for k in p.keys] + list(fixed)
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise TuningError(f"{path}: recipe key {twice[0]} is set by two entries")
    for key in keys:
        if key in ("seed_everything", "run_dir", "trainer.max_epochs"):
            raise TuningError(f"{path}: {key} is set by the tuner itself (seed, run directory, fidelity)")
    return ConfigurationSpace(str(path), parameters, dict(fixed))


def load_tuning(path: str | Path) -> Tuning:
    """The tuning file; its ``space`` is a configuration space file (relative to the working directory,
    or to the tuning file)."""
    path = Path(path)
    data = _load_yaml(path, "tuning file")
    allowed = ("space", "fixed", "scheduler", "num_samples", "min_epochs", "eta", "seed", "fidelity", "objective")
    _unknown(str(path), data, allowed)
    space_path = data.get("space")
    if not isinstance(space_path, str):
        raise TuningError(f"{path}: 'space' must name a configuration space file (recipes/tuning/cs2.yaml)")
    candidate = Path(space_path)
    if not candidate.is_file() and (path.parent / space_path).is_file():
        candidate = path.parent / space_path
    space = load_space(candidate)
    fixed = data.get("fixed") or {}
    if not isinstance(fixed, dict) or not all(isinstance(k, str) and _KEY.match(k) for k in fixed):
        raise TuningError(f"{path}: 'fixed' must map recipe keys to values (data.init_args.cutout: 4)")
    clash = sorted(set(fixed) & {k for p in space.parameters for k in p.keys})
    if clash:
        raise TuningError(f"{path}: fixed key {clash[0]} is a tuned parameter of {candidate}")
    space = ConfigurationSpace(space.path, space.parameters, {**space.fixed, **fixed})
    scheduler = data.get("scheduler", "bohb")
    if scheduler not in SCHEDULERS:
        raise TuningError(f"{path}: scheduler {scheduler!r} is not one of {', '.join(SCHEDULERS)}")
    fidelity = data.get("fidelity", "continue")
    if fidelity not in FIDELITY_MODES:
        raise TuningError(f"{path}: fidelity {fidelity!r} is not one of {', '.join(FIDELITY_MODES)} (docs/tuning.md)")
    numbers = {}
    for key, default, least in (("num_samples", 8, 1), ("min_epochs", 25, 1), ("eta", 2, 2), ("seed", 0, 0)):
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise TuningError(f"{path}: {key} must be an integer >= {least}, got {value!r}")
        numbers[key] = value
    objective = data.get("objective") or {}
    if not isinstance(objective, dict):
        raise TuningError(f"{path}: 'objective' must be a mapping (table, metric, mode, on_demand, times, benchmark)")
    _unknown(f"{path}: objective", objective, ("table", "metric", "mode", "on_demand", "times", "benchmark"))
    goal = Objective(**objective)
    if goal.metric.startswith("test"):
        raise TuningError(f"{path}: objective.metric {goal.metric} is a test metric; tuning optimises the "
                          "benchmark's validation metric (NAS-Bench-1Shot1 Sec. 5.4), e.g. val_accuracy_mean")
    if goal.mode not in ("max", "min"):
        raise TuningError(f"{path}: objective.mode must be max or min, got {goal.mode!r}")
    if goal.table is None and goal.on_demand is None and goal.benchmark is None:
        raise TuningError(f"{path}: objective needs a validation table or an on_demand tabulation recipe (or a benchmark)")
    if goal.benchmark is not None and (not isinstance(goal.benchmark, dict) or "class_path" not in goal.benchmark):
        raise TuningError(f"{path}: objective.benchmark must be {{class_path: lightning_nas.blackbox.NB101Tables, "
                          f"init_args: {{...}}}}, got {goal.benchmark!r}")
    return Tuning(str(path), space, goal, scheduler, fidelity=fidelity, **numbers)


def check_keys(space: ConfigurationSpace, parse: Any) -> None:
    """Every key of the space (tuned and fixed) must be a key of this recipe and strategy: each is
    parsed with a value of its range by ``parse(overrides)`` (the CLI's own parse); an unknown key is
    one line naming the parameter, the key and the space file."""
    from lightning_nas.errors import RecipeError

    checks = [(f"fixed {key}", key, value) for key, value in space.fixed.items()]
    checks += [(f"parameter {p.name}", key, p.probe()) for p in space.parameters for key in p.keys]
    try:  # all at once first (one parse); one by one only to name the culprit
        parse([arg for _, key, value in checks for arg in (f"--{key}", _text(value))])
        return
    except RecipeError:
        pass
    for what, key, value in checks:
        try:
            parse([f"--{key}", _text(value)])
        except RecipeError as error:
            cause = " ".join(str(error).split())
            raise TuningError(f"{space.path}: {what}: {key} is not a key of this recipe and strategy, or "
                              f"{_text(value)} is not a value for it ({cause[:200]})") from None
