"""Scoring finished runs against a table given to the report (``--benchmark TABLE``).

A run records every architecture it scored or chose by its text form (``ranking/epoch_*.csv``,
``decoding.csv``, ``selection.json``), so its ground truth can be looked up again later: in a
table that was extended with more seeds after the runs finished, or made while they ran (the runs
then use ``--benchmark null``). Looking up is all that changes: the architectures, super-net scores
and selections are the run's own. With a table that covers the whole space the runs' ranking and
candidate sets are the same with or without a benchmark (``callbacks/common.sample_architectures``
draws from the table only when it covers part of the space), so a rescored run gives the numbers
it would have logged with that table (tested against a run that had it).
"""
from __future__ import annotations

from typing import Any, Callable

from lightning_nas.benchmarks import TabulatedBenchmark
from lightning_nas.benchmarks.base import TableBenchmark, ground_truth_summary
from lightning_nas.errors import LightningNASError
from lightning_nas.metrics import p_beat_random
from lightning_nas.report.common import NAN, ReportError

LookUp = Callable[[str], dict[str, Any]]


def load_table(path: str, metric: str) -> TableBenchmark:
    """The table named by ``--benchmark`` (a path, or the name of a shipped table) and ``--metric``."""
    try:
        table = TabulatedBenchmark(path, metric=metric, higher_is_better=not is_loss(metric))
        len(table)  # read it now: a wrong column is an error here, not in the middle of the report
    except LightningNASError as error:
        raise ReportError(f"--benchmark {path}: {error}") from None
    return table


def is_loss(metric: str) -> bool:
    """Lower is better for losses and perplexities (axis units and the orientation of rank correlations)."""
    return any(word in metric.lower() for word in ("loss", "ppl", "perplexity"))


def look_up(table: TableBenchmark, config: dict[str, Any], where: str) -> LookUp:
    """Architecture text form -> ground truth, rank, regret and table size (``{}`` when not in the
    table), through the run's own space (``model.init_args.space`` and ``space_options``)."""
    import lightning_nas.spaces  # noqa: F401  (registers the spaces)
    from lightning_nas.registry import SPACES

    init_args = ((config.get("model") or {}).get("init_args") or {}) if isinstance(config.get("model"), dict) else {}
    name = init_args.get("space", "nb201")
    try:
        space = SPACES.get(name)(**(init_args.get("space_options") or {}))
    except LightningNASError as error:
        raise ReportError(f"{where}/config.yaml: model.init_args.space {name!r}: {error}") from None

    def summary(text: str) -> dict[str, Any]:
        try:
            key = space.key(space.parse(text))
        except LightningNASError as error:
            raise ReportError(f"{where}: {text!r} is not a {name} architecture: {error}") from None
        return ground_truth_summary(table, key)

    return summary


def answer(selection: dict[str, Any], find: LookUp) -> dict[str, float]:
    """Ground truth, rank, table size and p(beat random) of one answer of ``selection.json``
    (p per run as the final selection computes it, with its recorded number of searches)."""
    found = find(str(selection["architecture"])) if selection.get("architecture") else {}
    if "rank" not in found:
        return {"ground_truth": NAN, "rank": NAN, "table_size": NAN, "p_beat_random": NAN}
    searches = int(selection.get("searches") or 1)
    return {"ground_truth": found["ground_truth"], "rank": found["rank"], "table_size": found["table_size"],
            "p_beat_random": p_beat_random(found["rank"], found["table_size"], searches)}

