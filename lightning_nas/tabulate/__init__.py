"""Make your own ground truth: ``python -m lightning_nas.tabulate --recipe R [--shard i/k]``.

``run.py`` drives a tabulation (and ``merge``); ``options.py`` parses and validates the recipe and
fixes the protocol; ``training.py`` trains one architecture with one seed; ``table.py`` owns the
crash-safe table file, shards and merging; ``noise.py`` measures the table's noise ceiling.
"""
from lightning_nas.tabulate.common import TabulateError
from lightning_nas.tabulate.noise import noise_ceiling
from lightning_nas.tabulate.options import architectures, build_parser
from lightning_nas.tabulate.run import main, tabulate
from lightning_nas.tabulate.table import merge
from lightning_nas.tabulate.training import train_one

__all__ = ["TabulateError", "architectures", "build_parser", "main", "merge", "noise_ceiling", "tabulate", "train_one"]
