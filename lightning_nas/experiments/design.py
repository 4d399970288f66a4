"""What an experiment is: one recipe run over seeds x a grid of factor values, one run directory each.

Kept free of Ray so that the naming, expansion and skipping rules (which decide what a rerun does)
are cheap to test and identical on a laptop and on a cluster.

- ``--seeds 0-9`` / ``0,3,7`` / ``0-2,5``: the seeds (``seed_everything``) of every grid point.
- ``--grid KEY=V1,V2``: one factor, any recipe key (``ranking.bn_mode=batch,running``,
  ``model.init_args.optimizer.lr=0.01,0.05``). ``--grid K1,K2=V1,V2`` ties keys: they take the same value
  together (``ranking.bn_mode,selection.bn_mode=batch,running``: score and select in one BN mode).
  Several ``--grid`` options form the cartesian product. Commas inside brackets do not split.
- A trial is named from its factor values and seed, ``bn_mode=batch__seed0``; the factor's label is
  the last part of its key(s), or the whole key where two factors would share a label.
- A trial has finished when its ``trial.json`` says ``"status": "finished"``; the runner writes it
  only after train.py's main returned 0 (after the final selection wrote ``selection.json``).
"""
from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightning_nas.errors import RecipeError
from lightning_nas.run_record import TRIAL_RECORD

FINISHED = "finished"
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_SAFE = re.compile(r"[^A-Za-z0-9._+-]")


class ExperimentError(RecipeError):
    """A malformed experiment option; the message names the option."""


@dataclass(frozen=True)
class Factor:
    """One grid axis: the recipe keys it sets (tied keys share each value) and its values, in order."""

    keys: tuple[str, ...]
    values: tuple[str, ...]
    label: str = ""


@dataclass
class Trial:
    name: str
    seed: int
    factors: dict[str, str] = field(default_factory=dict)  # label -> value
    overrides: list[str] = field(default_factory=list)  # --key value pairs that make this trial

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "seed": self.seed, "factors": dict(self.factors)}


def parse_seeds(text: str) -> list[int]:
    """``0-9``, ``0,3,7`` or a mix, in the order given, duplicates dropped."""
    seeds: list[int] = []
    for part in str(text).split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not match:
            raise ExperimentError(f"--seeds: expected seeds like 0-9 or 0,3,7 or 0-2,5 (got {text!r})")
        first, last = int(match.group(1)), int(match.group(2) if match.group(2) is not None else match.group(1))
        if last < first:
            raise ExperimentError(f"--seeds: range {part.strip()!r} ends before it starts")
        seeds.extend(s for s in range(first, last + 1) if s not in seeds)
    if len(seeds) > 100_000:
        raise ExperimentError(f"--seeds: {len(seeds)} seeds is surely a typo")
    return seeds


def split_values(text: str) -> list[str]:
    """Split at commas outside brackets and quotes, so ``[1,2],[3]`` is two values."""
    values, depth, quote, current = [], 0, "", []
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        elif char == "," and depth == 0:
            values.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    values.append("".join(current).strip())
    return values


def parse_grid(options: list[str]) -> list[Factor]:
    """Every ``--grid KEYS=VALUES`` option as a factor, with labels made unique."""
    factors: list[Factor] = []
    seen: set[str] = set()
    for option in options:
        keys_text, sep, values_text = option.partition("=")
        if not sep:
            raise ExperimentError(f"--grid {option!r}: expected KEY=V1,V2 (e.g. ranking.bn_mode=batch,running)")
        keys = tuple(k.strip().removeprefix("--") for k in keys_text.split(","))
        for key in keys:
            if not _KEY.match(key):
                raise ExperimentError(f"--grid {option!r}: {key!r} is not a recipe key (e.g. model.init_args.optimizer.lr)")
            if key in seen or key in ("seed_everything", "run_dir"):
                raise ExperimentError(f"--grid {option!r}: {key} is set twice or by the runner itself"
                                      + (" (use --seeds)" if key == "seed_everything" else ""))
            seen.add(key)
        values = split_values(values_text)
        if any(v == "" for v in values):
            raise ExperimentError(f"--grid {option!r}: empty value; expected KEY=V1,V2")
        if len(set(values)) != len(values):
            raise ExperimentError(f"--grid {option!r}: a value is listed twice")
        factors.append(Factor(keys, tuple(values)))
    return _label(factors)


def _label(factors: list[Factor]) -> list[Factor]:
    short = ["+".join(dict.fromkeys(k.rsplit(".", 1)[-1] for k in f.keys)) for f in factors]
    labels = [s if short.count(s) == 1 else "+".join(f.keys) for s, f in zip(short, factors, strict=True)]
    return [Factor(f.keys, f.values, label) for f, label in zip(factors, labels, strict=True)]


def short_value(value: str) -> str:
    """How a factor value reads in names and report labels: a recipe file given as a value
    (``--grid model=recipes/x/darts.yaml,...``) reads as its stem (``darts``); anything else as is."""
    if "/" in value and re.fullmatch(r"[\w./-]+\.(ya?ml|json)", value):
        return Path(value).stem
    return value


def name_part(value: str) -> str:
    """A file-name-safe form of a value; a hash keeps altered or shortened values unique."""
    safe = _SAFE.sub("_", short_value(value))
    if safe == value and len(safe) <= 40:
        return safe
    return f"{safe[:31]}-{hashlib.sha1(value.encode()).hexdigest()[:8]}"


def expand(factors: list[Factor], seeds: list[int]) -> list[Trial]:
    """Grid points in the order given (first factor slowest), seeds innermost."""
    trials = []
    for combo in itertools.product(*(f.values for f in factors)):
        for seed in seeds:
            parts = [f"{f.label}={name_part(v)}" for f, v in zip(factors, combo, strict=True)] + [f"seed{seed}"]
            overrides = [arg for f, v in zip(factors, combo, strict=True) for k in f.keys for arg in (f"--{k}", v)]
            trials.append(Trial("__".join(parts), seed, {f.label: v for f, v in zip(factors, combo, strict=True)}, overrides))
    return trials


def trial_status(run_dir: Path) -> str:
    """``finished``, ``failed``, ``running`` (or killed), or ``new``."""
    try:
        return json.loads((run_dir / TRIAL_RECORD).read_text()).get("status", "new")
    except (OSError, ValueError):
        return "new"


def pending(trials: list[Trial], experiment_dir: Path) -> tuple[list[Trial], list[Trial]]:
    """(to run, already finished): a rerun of the same command only runs what has not finished."""
    done = [t for t in trials if trial_status(experiment_dir / t.name) == FINISHED]
    names = {t.name for t in done}
    return [t for t in trials if t.name not in names], done
