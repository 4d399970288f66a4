"""Experiments: a recipe over seeds x factor values on Ray Tune (runner), each trial an ordinary run of
``lightning_nas.cli``. The dependency goes one way: ``cli`` never imports this package (reruns that
check reproducibility, ``--reproduce``, live in ``lightning_nas.run.reproduce``). ``docs/experiments.md``
has the long form."""
from lightning_nas.experiments.design import ExperimentError, Factor, Trial, expand, parse_grid, parse_seeds, pending

__all__ = ["ExperimentError", "Factor", "Trial", "expand", "parse_grid", "parse_seeds", "pending"]
