"""Values checked while the command is parsed, before anything is built or written.

Trainer values that Lightning accepts silently (or with a traceback) but that make no run, so that
``trainer.max_epochs 0`` or ``trainer.devices abc`` is one ``RecipeError`` line naming the key, not
an empty run or a stack trace; Lightning's silent substitution of a precision the device lacks,
said in one notice line; a run directory that cannot be created; and the recipe keys that were
renamed, so that an old key names its new one (``RENAMED_KEYS``, the one table of them).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Optional

from jsonargparse import ActionConfigFile

from lightning_nas.errors import RecipeError
from lightning_nas.run.notices import notice

#: Recipe keys that were renamed -> their new key. The strategies' flat optimiser arguments became
#: the typed sections ``optimizer`` (``WeightOptimizer``) and ``architecture_optimizer``
#: (``ArchitectureOptimizer``); a recipe or command line with the old key is refused naming the new one.
RENAMED_KEYS: dict[str, str] = {
    **{f"model.init_args.{key}": f"model.init_args.optimizer.{key}"
       for key in ("lr", "momentum", "weight_decay", "nesterov", "min_lr")},
    "model.init_args.lr_schedule": "model.init_args.optimizer.schedule",
    "model.init_args.grad_clip": "model.init_args.optimizer.grad_clip (weights) or "
                                 "model.init_args.architecture_optimizer.grad_clip (architecture parameters)",
    **{f"model.init_args.arch_{key}": f"model.init_args.architecture_optimizer.{key}"
       for key in ("lr", "betas", "weight_decay", "warmup_epochs")},
    "model.init_args.controller_lr": "model.init_args.architecture_optimizer.lr",
}


def renamed(key: str) -> Optional[str]:
    """The new name of a renamed recipe key (dotted, without ``--``), else None."""
    return RENAMED_KEYS.get(key.lstrip("-"))


def _check_range(key: str, value: Any, minimum: int, allowed: tuple = (), why: str = "") -> None:
    if value is None or value in allowed:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        extra = f" (or {', '.join(map(str, allowed))})" if allowed else ""
        raise RecipeError(f"{key} must be at least {minimum}{extra}, got {value!r}" + (f": {why}" if why else ""))


def model_trains(model: Any) -> bool:
    """False for a strategy class that trains nothing (``SearchStrategy.trains``)."""
    from lightning_nas.run.requirements import strategy_class

    return bool(getattr(strategy_class(model), "trains", True))


def validate_trainer(trainer: Any, trains: bool = True) -> None:
    """The Trainer values that Lightning accepts silently (or with a traceback) but that make no run.

    ``trains`` is False for strategies that train nothing (the random-sampling baseline), which
    may run zero epochs."""
    get = (lambda key: trainer.get(key)) if trainer is not None else (lambda key: None)
    _check_range("trainer.max_epochs", get("max_epochs"), 1 if trains else 0, (-1,),
                 "fewer than one epoch would rank and select an untrained super-net")
    _check_range("trainer.max_steps", get("max_steps"), 1, (-1,), "no step would train anything")
    _check_range("trainer.min_epochs", get("min_epochs"), 0)
    _check_range("trainer.min_steps", get("min_steps"), 0)
    _check_range("trainer.log_every_n_steps", get("log_every_n_steps"), 1)
    _check_range("trainer.check_val_every_n_epoch", get("check_val_every_n_epoch"), 1)
    _check_range("trainer.accumulate_grad_batches", get("accumulate_grad_batches"), 1)
    interval = get("val_check_interval")
    if interval is not None and (isinstance(interval, bool) or interval <= 0):
        raise RecipeError(f"trainer.val_check_interval must be a count >= 1 or a fraction in (0, 1], got {interval!r}")
    clip = get("gradient_clip_val")
    if clip is not None and (isinstance(clip, bool) or clip < 0):
        raise RecipeError(f"trainer.gradient_clip_val must be >= 0 (0 or null: no clipping), got {clip!r}: "
                          "Lightning would silently not clip at all")
    _check_registered(trainer)
    _check_devices(get("devices"), on_cpu=_trains_on_cpu(get("accelerator")))
    limit = get("limit_train_batches")
    fraction = isinstance(limit, float) and not limit.is_integer()  # jsonargparse reads "3" as 3.0
    if limit is not None and (isinstance(limit, bool) or limit <= 0 or (fraction and limit > 1)):
        raise RecipeError(f"trainer.limit_train_batches must be a count >= 1 or a fraction in (0, 1], got {limit!r}")
    _cpu_precision(trainer)


def _check_registered(trainer: Any) -> None:
    """``trainer.accelerator`` and ``trainer.strategy`` names that Lightning does not know (its ValueError
    would be a traceback)."""
    from pytorch_lightning.accelerators import AcceleratorRegistry
    from pytorch_lightning.strategies import StrategyRegistry

    for key, known, examples in (
            ("accelerator", [*AcceleratorRegistry.available_accelerators(), "auto", "gpu"], "auto, cpu, gpu, cuda, mps"),
            ("strategy", [*StrategyRegistry.available_strategies(), "auto"], "auto, ddp, ddp_spawn, deepspeed, fsdp")):
        value = trainer.get(key) if trainer is not None else None
        if isinstance(value, str) and value.lower() not in known:
            raise RecipeError(f"trainer.{key} {value!r} is not one Lightning knows; e.g. {examples}")


def _trains_on_cpu(accelerator: Any) -> bool:
    """Whether Lightning will train on the CPU: ``cpu``, or ``auto`` on a machine without an accelerator."""
    import torch

    name = accelerator if isinstance(accelerator, str) else type(accelerator).__name__ if accelerator else "auto"
    name = name.lower().removesuffix("accelerator")
    if name == "auto":
        mps = getattr(torch.backends, "mps", None)
        return not torch.cuda.is_available() and not (mps is not None and mps.is_available())
    return name == "cpu"


def _check_devices(devices: Any, on_cpu: bool) -> None:
    """``trainer.devices``: what Lightning's accelerator accepts, refused in one line instead of its TypeError."""
    if devices is None or devices == "auto":
        return
    if isinstance(devices, str) and re.fullmatch(r"\s*-?\d+\s*", devices):
        devices = int(devices)
    if on_cpu:
        if isinstance(devices, int) and not isinstance(devices, bool) and devices >= 1:
            return
        raise RecipeError(f"trainer.devices must be a number of CPU processes >= 1 or 'auto', got {devices!r}")
    if isinstance(devices, int) and not isinstance(devices, bool) and (devices >= 1 or devices == -1):
        return
    indices = devices.split(",") if isinstance(devices, str) else devices
    if isinstance(indices, (list, tuple)) and indices and all(
            (isinstance(i, int) and not isinstance(i, bool) and i >= 0) or
            (isinstance(i, str) and (i.strip().isdigit() or not i.strip())) for i in indices) \
            and any(str(i).strip() for i in indices):
        return
    raise RecipeError(f"trainer.devices must be a device count >= 1, -1 (all), a list of device indices "
                      f"such as [0, 1], or 'auto', got {devices!r}")


def _cpu_precision(trainer: Any) -> None:
    """Lightning trains ``16-mixed`` on a CPU as ``bf16-mixed`` (CPUs have no float16 autocast), saying so
    only at a log level ``train.py`` hides. Make the substitution explicit: the recipe's value becomes
    ``bf16-mixed`` (so config.yaml records what ran) and one notice line says why."""
    if trainer is None:
        return
    precision = trainer.get("precision")
    if str(precision) in ("16", "16-mixed") and _trains_on_cpu(trainer.get("accelerator")):
        trainer["precision"] = "bf16-mixed"
        notice(f"trainer.precision {precision} on CPU: CPUs have no float16 mixed precision, so the run trains "
               "with bf16-mixed (recorded in config.yaml); write --trainer.precision bf16-mixed to say so")


def check_run_directory(run_dir: Path) -> None:
    """A run directory that cannot be created or written, refused before anything is: a regular file in
    its place or on its path, or no write permission where it would be created."""
    if run_dir.exists() and not run_dir.is_dir():
        raise RecipeError(f"run_dir {run_dir} is a file, not a directory; choose another --run_dir")
    existing = run_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise RecipeError(f"run_dir {run_dir} cannot be created: {existing} is a file; choose another --run_dir")
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "is not writable" if existing == run_dir else f"cannot be created: no write permission in {existing}"
        raise RecipeError(f"run_dir {run_dir} {where}; choose a writable --run_dir")


RECIPE_SECTIONS = "trainer, model, data, ..."


def check_recipe_file(value: Any, sections: str = RECIPE_SECTIONS) -> None:
    """A recipe file that is not a YAML mapping of sections, in one line naming the file (jsonargparse
    would say ``Unexpected config: ...`` about a list or an empty file, and fail to decode a binary one).
    A value that is not an existing file is left to jsonargparse (a missing file, an inline YAML string)."""
    import yaml

    path = Path(str(value))
    try:
        if not path.is_file():
            return
    except OSError:  # not a file name at all (a long inline YAML string)
        return
    data = path.read_bytes()
    expected = f"a recipe is YAML text: a mapping of sections ({sections})"
    try:
        if b"\0" in data:
            raise UnicodeDecodeError("utf-8", data, data.index(b"\0"), data.index(b"\0") + 1, "NUL byte")
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RecipeError(f"recipe {path} is not a text file (byte {error.start} is binary); {expected}") from None
    try:
        content = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise RecipeError(f"recipe {path} is not valid YAML{where}: {problem}; {expected}") from None
    if content is None:
        raise RecipeError(f"recipe {path} is empty; it must be a mapping of sections ({sections})")
    if not isinstance(content, dict):
        kind = {list: "a list", str: "a string"}.get(type(content), f"a {type(content).__name__}")
        raise RecipeError(f"recipe {path} must be a mapping of sections ({sections}), got {kind}")


class RecipeFileAction(ActionConfigFile):
    """``--recipe FILE``: a file that is not a YAML mapping of ``sections`` is one line naming it."""

    sections = RECIPE_SECTIONS

    def __call__(self, parser, cfg, values, option_string=None):  # type: ignore[override]
        check_recipe_file(values, self.sections)
        super().__call__(parser, cfg, values, option_string)
