"""A ground-truth table stored as CSV, one row per architecture.

The format of the NAS-Bench-201 export in ``shared/data/nb201`` (``ArchitectureString`` plus one
column per metric) and of the tables written by ``lightning_nas.tabulate``.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

from lightning_nas.benchmarks.base import GroundTruthError, TableBenchmark


class CSVBenchmark(TableBenchmark):
    """Args:
        path: the CSV file.
        metric: the column holding the ground truth (e.g. ``CIFAR10TestAccuracy200Epochs``).
        key_column: the column holding the architecture string.
        higher_is_better: False for errors or losses.
    """

    def __init__(self, path: str, metric: str = "CIFAR10TestAccuracy200Epochs",
                 key_column: str = "ArchitectureString", higher_is_better: bool = True) -> None:
        self.path = Path(path)
        self.metric = metric
        self.key_column = key_column
        self.higher_is_better = higher_is_better
        self._table: dict[str, float] | None = None
        self._lines: dict[str, int] = {}
        self.source = str(self.path)
        if not self.path.is_file():
            raise GroundTruthError(f"benchmark.path: ground-truth table {self.path} does not exist")

    def table(self) -> dict[str, float]:
        if self._table is None:
            self._table = self._read()
        return self._table

    def _read(self) -> dict[str, float]:
        with self.path.open(newline="") as handle:
            numbered = [(number, line) for number, line in enumerate(handle, start=1) if not line.startswith("#")]
        rows = csv.DictReader(line for _, line in numbered)
        columns = rows.fieldnames or []
        for needed, key in ((self.key_column, "key_column"), (self.metric, "metric")):
            if needed not in columns:
                raise GroundTruthError(f"benchmark.{key}: column {needed!r} is not in {self.path}; "
                                       f"columns: {', '.join(columns)}")
        table: dict[str, float] = {}
        for row in rows:
            # the file's own number (comments included) of the row's last line: DictReader skips blank lines,
            # so rows and lines need not pair up; line_num counts the lines it has read
            line = numbered[rows.line_num - 1][0]
            try:
                value = float(row[self.metric])
            except (TypeError, ValueError):
                raise GroundTruthError(f"{self.path}:{line}: {self.metric}={row[self.metric]!r} is not a number") from None
            if math.isnan(value):
                raise GroundTruthError(f"{self.path}:{line}: {self.metric} is NaN")
            key = row[self.key_column]
            if key in table:
                raise GroundTruthError(f"{self.path}:{line}: {key!r} appears twice (first on line {self._lines[key]})")
            table[key] = value
            self._lines[key] = line
        if not table:
            raise GroundTruthError(f"{self.path} holds no architectures")
        return table

    def line_of(self, key: str, default: int) -> int:
        return self._lines.get(key, default)
