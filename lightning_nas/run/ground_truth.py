"""A recipe whose ground-truth table is made, not shipped, runs without it and says how to make it.

A ``TabulatedBenchmark`` that names the command writing its table (``made_by``) and whose table is not
there yet is dropped from the run before anything is built, with one line naming the missing table,
what the run then lacks (the rank correlations of the ranking callback and the selected architecture's
ground truth; the shared-weight scores are logged as usual) and the command. The run's ``config.yaml``
records ``benchmark: null``, so a resume stays what the run was. A table without ``made_by`` (a path
the user wrote) that is missing stays a one-line error: a typo must not become a run without truth.
"""
from __future__ import annotations

from typing import Any

from lightning_nas.errors import GroundTruthError
from lightning_nas.run.requirements import notice


def drop_missing_ground_truth(config: Any) -> None:
    """Set ``config.benchmark`` to None, with a notice, where its table is missing and ``made_by`` says
    how to make it."""
    from lightning_nas.benchmarks.tabulated import resolve_table

    benchmark = config.get("benchmark")
    init = benchmark.get("init_args") if benchmark is not None else None
    made_by = init.get("made_by") if init is not None else None
    if not made_by:
        return
    try:
        resolve_table(init.path)
    except GroundTruthError:
        config.benchmark = None
        notice(f"ground truth {init.path} is not there: this run reports no rank correlations and no ground truth "
               f"for its selection (shared-weight scores only); make the table with: {made_by}")
