"""Tables written by ``lightning_nas.tabulate``: a CSV benchmark that knows its seeds and sidecar.

The table's metric columns are ``<split>_<metric>_mean`` (the mean over seeds, the ground truth),
``..._std`` and ``..._seed<s>``. A relative ``path`` that does not exist from the working
directory is looked up among the tables shipped with the package (``benchmarks/tables/``), then among
the tables shipped as records (``RECORD_TABLES``: ``results/rnn_pilots/``), so a recipe can say ``path:
nb201_digits.csv`` and run from anywhere.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Iterator, Optional

from lightning_nas.benchmarks.base import GroundTruthError
from lightning_nas.benchmarks.csv_table import CSVBenchmark

TABLES = Path(__file__).resolve().parent / "tables"
#: tables shipped as records rather than installed ground truth (the cheaper-protocol pilots of the 2-node PTB
#: space, docs/rnn_space.md), found by name after ``TABLES``; a folder absent outside a checkout is skipped
RECORD_TABLES = (Path(__file__).resolve().parents[2] / "results" / "rnn_pilots",)


def resolve_table(path: str | Path) -> Path:
    """``path`` as given if it exists, else the shipped table of that name; an error lists the shipped ones."""
    given = Path(path)
    if given.is_file():
        return given
    if not given.is_absolute():
        for candidate in (TABLES / given, TABLES / given.name, *(folder / given.name for folder in RECORD_TABLES)):
            if candidate.is_file():
                return candidate
    shipped = ", ".join(sorted(p.name for folder in (TABLES, *RECORD_TABLES) for p in folder.glob("*.csv")
                               if not p.name.endswith(".times.csv"))) or "none"
    raise GroundTruthError(f"benchmark.path: ground-truth table {path} does not exist (shipped tables: {shipped})")


def key_column_of(path: Path) -> str:
    """The column a table keys its rows by: ``key`` where ``lightning_nas.tabulate`` wrote one (spaces
    whose benchmark key is not the text form, e.g. the NB101 graph hash), else ``ArchitectureString``."""
    with path.open(newline="") as handle:
        columns = next(csv.reader(line for line in handle if not line.startswith("#")), [])
    return "key" if "key" in columns else "ArchitectureString"


class TabulatedBenchmark(CSVBenchmark):
    """Args:
        path: the table (CSV), or the name of a shipped one (e.g. ``nb201_digits.csv``).
        metric: the ground-truth column; the mean over seeds (e.g. ``test_accuracy_mean``).
        higher_is_better: False for losses.
        made_by: the command that writes this table, for a recipe whose table is not shipped
            (``python -m lightning_nas.tabulate --recipe ...``): where the table is missing, a run goes
            on without ground truth and says how to make it (``lightning_nas.run.ground_truth``);
            without ``made_by`` a missing table is an error.
    """

    def __init__(self, path: str = "nb201_digits.csv", metric: str = "test_accuracy_mean",
                 higher_is_better: bool = True, made_by: Optional[str] = None) -> None:
        self.made_by = made_by
        table = resolve_table(path)
        super().__init__(str(table), metric=metric, key_column=key_column_of(table),
                         higher_is_better=higher_is_better)

    def entries(self) -> Iterator[tuple[int, str, str]]:
        """As every table; a table keyed by a ``key`` column (graph hashes, which do not parse) pairs each
        row's key with its ``ArchitectureString``, so ``check`` parses the cell and compares its key."""
        if self.key_column == "ArchitectureString":
            yield from super().entries()
            return
        with self.path.open(newline="") as handle:
            rows = csv.DictReader(line for line in handle if not line.startswith("#"))
            for number, row in enumerate(rows, start=2):
                yield number, row["ArchitectureString"], row[self.key_column]

    @property
    def sidecar(self) -> dict[str, Any]:
        """The JSON written beside the table (protocol, seeds, versions, noise ceiling); {} if absent."""
        side = self.path.with_suffix(".json")
        return json.loads(side.read_text()) if side.is_file() else {}

    def seed_values(self, key: str) -> list[float]:
        """The per-seed values behind ``query(key)`` (for noise-aware comparisons)."""
        base = self.metric[:-len("_mean")] if self.metric.endswith("_mean") else self.metric
        key = str(key)
        with self.path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                if row[self.key_column] == key:
                    return [float(v) for k, v in row.items() if k.startswith(f"{base}_seed")]
        raise GroundTruthError(f"{key} is not in {self.path}")
