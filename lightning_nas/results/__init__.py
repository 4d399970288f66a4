"""Published results as artifacts: per-trial records shipped in ``results/<experiment>/`` and the one
command that regenerates every table and figure of the docs from them.

- ``python -m lightning_nas.results extract EXPERIMENT_DIR [--name NAME]`` (``extract.py``);
- ``python -m lightning_nas.results render [--check]`` (``render.py``, tables in ``tables.py``,
  figures in ``figures.py``, display names in ``names.py``).
"""
from lightning_nas.results.extract import extract, record_trial
from lightning_nas.results.render import render
from lightning_nas.results.tables import TABLES, Records

__all__ = ["TABLES", "Records", "extract", "record_trial", "render"]
