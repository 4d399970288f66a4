"""Experiments: a recipe over seeds x factor values on Ray Tune (runner), and reruns that check
reproducibility (reproduce). ``docs/experiments.md`` has the long form."""
from lightning_nas.experiments.design import ExperimentError, Factor, Trial, expand, parse_grid, parse_seeds, pending

__all__ = ["ExperimentError", "Factor", "Trial", "expand", "parse_grid", "parse_seeds", "pending"]
