"""What a strategy needs from the recipe it is given, settled from the parsed command before anything
is built, so that any registered strategy can be put on any recipe (``--model.class_path ...``).

- **Gradient clipping has one place**, the strategy's ``model.init_args.optimizer.grad_clip``, which
  every strategy honours (``SearchStrategy.clip_by_norm``), under automatic and manual optimisation
  alike. Lightning's ``trainer.gradient_clip_val`` works only under automatic optimisation (a bi-level
  strategy ends in a Lightning traceback), so a recipe's value is moved into the strategy's with a
  one-line notice: the same norm bound on the same parameters at the same point of the step, hence
  the same numbers. Two different bounds, or clipping by value, are refused in one line.
- **Data a strategy needs** (``SearchStrategy.data_needs``: an architecture split for DARTS, GDAS,
  PC-DARTS and ENAS' reward) is given its paper's share of the training data, with a one-line notice,
  where the recipe sets none; a DataModule without such an option is refused in one line. A split
  the strategy does not use is said too (its data then trains nothing).
"""
from __future__ import annotations

import importlib
import inspect
from typing import Any, Optional

from lightning_nas.errors import RecipeError

CLIP_KEY = "model.init_args.optimizer.grad_clip"


def notice(text: str) -> None:
    """One line on what the run does differently from what the recipe says, before anything is built."""
    print(f"[lightning_nas] {text}", flush=True)


def strategy_class(model: Any) -> Optional[type]:
    """The class a ``model`` section names (``class_path``), or None where it cannot be imported (the
    CLI's own instantiation then reports it)."""
    path = model.get("class_path") if model is not None else None
    if not isinstance(path, str) or "." not in path:
        return None
    module, _, name = path.rpartition(".")
    try:
        found = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None
    return found if isinstance(found, type) else None


def settle_requirements(config: Any) -> None:
    """Settle clipping and data needs in ``config`` (the parsed command; changed in place, so that the
    run's ``config.yaml`` records what the run did)."""
    strategy = strategy_class(config.get("model"))
    one_clipping_place(config, strategy)
    provide_data_needs(config, strategy)


def _default_clip(strategy: Optional[type]) -> Optional[float]:
    """The strategy's own default ``optimizer.grad_clip`` (its paper's), where its signature states one."""
    parameter = inspect.signature(strategy).parameters.get("optimizer") if strategy is not None else None
    return getattr(getattr(parameter, "default", None), "grad_clip", None)


def one_clipping_place(config: Any, strategy: Optional[type]) -> None:
    """Move ``trainer.gradient_clip_val`` into ``model.init_args.optimizer.grad_clip`` (see module doc)."""
    trainer = config.get("trainer")
    bound = trainer.get("gradient_clip_val") if trainer is not None else None
    if not bound:  # None or 0: Lightning clips nothing
        return
    algorithm = trainer.get("gradient_clip_algorithm")
    if algorithm not in (None, "norm"):
        raise RecipeError(f"trainer.gradient_clip_algorithm {algorithm!r}: strategies bound the gradient norm only; "
                          f"remove trainer.gradient_clip_* and set {CLIP_KEY}")
    init = config.model.get("init_args") if config.get("model") is not None else None
    optimizer = init.get("optimizer") if init is not None else None
    name = strategy.__name__ if strategy is not None else "the model"
    if optimizer is None or "grad_clip" not in optimizer:
        raise RecipeError(f"trainer.gradient_clip_val {bound}: {name} has no {CLIP_KEY}, where clipping is set; "
                          "remove trainer.gradient_clip_val")
    current = optimizer.grad_clip
    if current and current != bound:
        whose = f" (the default of {name})" if current == _default_clip(strategy) else ""
        raise RecipeError(f"trainer.gradient_clip_val {bound} and {CLIP_KEY} {current}{whose} both bound the weights' "
                          f"gradient norm: set only {CLIP_KEY}, where every strategy clips")
    optimizer.grad_clip = float(bound)
    trainer.gradient_clip_val = None
    trainer.gradient_clip_algorithm = None
    notice(f"trainer.gradient_clip_val {bound} -> {CLIP_KEY} {float(bound)} (the one place every strategy clips; "
           "same norm bound, same numbers)")


def provide_data_needs(config: Any, strategy: Optional[type]) -> None:
    """Give ``strategy`` the data splits it declares (``data_needs``), or say one is left unused."""
    needs = dict(getattr(strategy, "data_needs", None) or {})
    data = config.get("data")
    init = data.get("init_args") if data is not None else None
    name = strategy.__name__ if strategy is not None else "the model"
    data_name = str(data.get("class_path", "the DataModule")).rpartition(".")[2] if data is not None else "the data"
    for option, share in needs.items():
        key = f"data.init_args.{option}"
        if init is None or option not in init:
            raise RecipeError(f"{name} learns its architecture on held-out data ({key}), which {data_name} does not "
                              "offer: use a DataModule with that option (lightning_nas.data.ImageDataModule, PTBDataModule)")
        if init[option]:
            continue
        value = _share_of_training_data(share, init)
        if value is None:
            raise RecipeError(f"{name} learns its architecture on held-out data: set {key} (its paper holds out "
                              f"{share:g} of the training data left after data.init_args.val_split)")
        init[option] = value
        notice(f"{name} learns its architecture on held-out data: {key} 0 -> {value:g} ({share:g} of the training "
               f"data{_after_validation(init)}, as its paper holds out); set {key} to choose")
    if "arch_split" not in needs and init is not None and init.get("arch_split"):
        notice(f"{name} learns no architecture on held-out data: data.init_args.arch_split {init['arch_split']} "
               "holds out training data that nothing trains on (set it to 0 to train the weights on it)")


def _share_of_training_data(share: float, init: Any) -> Optional[float]:
    """``share`` of what the validation split leaves, as a fraction of all training data (the form
    ``val_split`` and ``arch_split`` share); None where the validation split is a count."""
    val = init.get("val_split", 0) or 0
    if isinstance(val, bool) or not isinstance(val, (int, float)) or (val and not isinstance(val, float)):
        return None
    return round(share * (1.0 - float(val)), 6)


def _after_validation(init: Any) -> str:
    val = init.get("val_split")
    return f" left after val_split {val:g}" if isinstance(val, float) and val else ""
