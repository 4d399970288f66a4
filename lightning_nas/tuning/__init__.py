"""Tuning one-shot NAS as NAS-Bench-1Shot1 did (Zela et al. 2020, Sec. 5.4, App. F): BOHB, ASHA or
Hyperband on Ray Tune over a configuration space of the search's hyperparameters, with the number of
search epochs as fidelity and the benchmark's validation metric of each run's answer as objective.
``train.py --recipe R --tune TUNING.yaml`` (``runner``); the files: ``settings``; the objective:
``objective``; the records (``tuning.json``, ``trajectories.jsonl``): ``trajectory``. docs/tuning.md."""
from lightning_nas.tuning.settings import ConfigurationSpace, Objective, Parameter, Tuning, TuningError, load_space, load_tuning

__all__ = ["ConfigurationSpace", "Objective", "Parameter", "Tuning", "TuningError", "load_space", "load_tuning"]
