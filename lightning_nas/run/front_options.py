"""The options that say what kind of run a command is (``--resume``, ``--reproduce``, ``--seeds``,
``--grid``, ``--tune``, ``--stop_at_epoch`` and the experiment options), shared by the CLI that parses them and the experiment runner
that writes each trial's recipe.

They are never written to a run's ``config.yaml`` or an experiment's ``recipe.yaml``: a resolved
recipe must not make the next command that reads it a resume, an experiment or a thread-count
override.
"""
from __future__ import annotations

from typing import Any

from jsonargparse import Namespace

#: option -> its default (what a resolved recipe holds instead of the value given)
FRONT_OPTIONS: dict[str, Any] = {
    "resume": None, "reproduce": None, "seeds": None, "grid": None, "experiment_dir": None,
    "ray_address": None, "num_cpus": None, "gpus_per_trial": 0.0, "max_concurrent": 0,
    "allow_thread_change": False,
    "tune": None, "tune_seed": None, "stop_at_epoch": None}


def reset_front_options(config: Namespace, **also: Any) -> Namespace:
    """``config`` (changed in place) with FRONT_OPTIONS, and the keys of ``also``, set to their defaults."""
    for key, default in {**FRONT_OPTIONS, **also}.items():
        if key in config:
            config[key] = default
    return config
