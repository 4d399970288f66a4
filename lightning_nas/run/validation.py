"""Trainer values that Lightning accepts silently (or with a traceback) but that make no run.

Checked while the command is parsed, before anything is built, so that ``trainer.max_epochs 0`` or
``trainer.limit_train_batches 0`` is one ``RecipeError`` line naming the key, not an empty run
that ranks an untrained super-net.
"""
from __future__ import annotations

from typing import Any

from lightning_nas.errors import RecipeError


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
    limit = get("limit_train_batches")
    fraction = isinstance(limit, float) and not limit.is_integer()  # jsonargparse reads "3" as 3.0
    if limit is not None and (isinstance(limit, bool) or limit <= 0 or (fraction and limit > 1)):
        raise RecipeError(f"trainer.limit_train_batches must be a count >= 1 or a fraction in (0, 1], got {limit!r}")
