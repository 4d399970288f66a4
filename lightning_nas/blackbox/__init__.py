"""Discrete black-box NAS on table benchmarks (issue 23): random search, regularised evolution,
REINFORCE and BOHB driving a space's decisions, with simulated wall-clock from the table's training times and
anytime trajectories in one record format (``trajectory.py``).

``python -m lightning_nas.blackbox --recipe recipes/blackbox/nb201_digits_729.yaml --optimizer NAME``.
"""
from lightning_nas.blackbox.bohb import BOHB
from lightning_nas.blackbox.expectation import random_search_regret
from lightning_nas.blackbox.optimizers import (OPTIMIZERS, BlackBoxOptimizer, RandomSearch, RegularizedEvolution,
                                               Reinforce, build_optimizer)
from lightning_nas.blackbox.problem import CSVTables, NB101Tables, Query, TableProblem, Tables
from lightning_nas.blackbox.search import run
from lightning_nas.blackbox.trajectory import TrajectoryError

__all__ = ["BOHB", "OPTIMIZERS", "BlackBoxOptimizer", "CSVTables", "NB101Tables", "Query", "RandomSearch",
           "RegularizedEvolution", "Reinforce", "TableProblem", "Tables", "TrajectoryError", "build_optimizer",
           "random_search_regret", "run"]
