"""Budget-matched low fidelity: a reduced super-net trained for proportionally more epochs.

Yu et al., "How to Train Your Super-Net" (Sec. 4.4, Table 2): "We deliberately prolong the training
epochs inversely proportionally to the computational budget that would be saved by the low-fidelity
estimates, e.g. if the channel number is reduced by half, we train the model for two times more
epoch." The saving is taken, as there, from the reduced settings themselves: with the recipe's
values v_k of the low-fidelity keys (channels C, repeated cells N, batch size, train portion, ...)
and the full-fidelity values r_k the recipe names in ``budget_match``,

    max_epochs' = ceil(max_epochs * prod_k r_k / v_k).

``budget_match`` maps full recipe keys to their full-fidelity values, e.g.
``{model.init_args.network.C: 16, data.init_args.train_portion: 1.0}``. It is applied once, before
anything is built: ``trainer.max_epochs`` is prolonged, ``budget_match`` is cleared, and the run's
``config.yaml`` records the prolonged epochs (so ``--resume`` and ``--reproduce`` do not prolong
them again); a one-line notice says what changed.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

from lightning_nas.errors import RecipeError
from lightning_nas.run.requirements import notice


def budget_factor(values: Mapping[str, float], reference: Mapping[str, float]) -> float:
    """prod_k reference[k] / values[k]: how many times cheaper the reduced settings are (Yu et al. Sec. 4.4)."""
    factor = 1.0
    for key, full in reference.items():
        value = values[key]
        if not (isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0):
            raise RecipeError(f"budget_match: {key} is {value!r} in the recipe; budget matching needs a positive number")
        if not (isinstance(full, (int, float)) and not isinstance(full, bool) and full >= value):
            raise RecipeError(f"budget_match: {key}: {full!r} must be the full-fidelity value, a number >= the "
                              f"recipe's {value}")
        factor *= full / value
    return factor


def lookup(config: Any, key: str) -> Any:
    """The value of the dotted ``key`` in the parsed command (through namespaces and plain dicts such
    as ``model.init_args.network``)."""
    value = config
    for part in key.split("."):
        value = value[part]
    return value


def match_budget(config: Any) -> None:
    """Prolong ``trainer.max_epochs`` of the parsed command ``config`` by ``budget_match`` (in place)."""
    reference = config.get("budget_match")
    if not reference:
        return
    values = {}
    for key in reference:
        try:
            values[key] = lookup(config, key)
        except (KeyError, TypeError, AttributeError):
            raise RecipeError(f"budget_match names {key}, which the recipe does not set (name a full key such "
                              "as model.init_args.network.C or data.init_args.train_portion)") from None
    epochs = config.trainer.get("max_epochs")
    if not isinstance(epochs, int) or epochs < 1:
        raise RecipeError(f"budget_match needs trainer.max_epochs (a positive integer), got {epochs!r}")
    factor = budget_factor(values, reference)
    config.trainer.max_epochs = math.ceil(epochs * factor - 1e-9)  # exact multiples stay exact
    config.budget_match = None
    notice(f"budget_match: trainer.max_epochs {epochs} -> {config.trainer.max_epochs} (x{factor:g}: "
           + ", ".join(f"{k} {values[k]} of {reference[k]}" for k in reference) + ")")
