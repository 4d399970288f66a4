"""A table benchmark as a black-box problem: what a query of one cell returns, and what it costs.

Discrete black-box NAS on a tabular benchmark (Ying et al. 2019, NAS-Bench-101, Sec. 5) replaces
training by a look-up. A query of a cell returns

- ``valid``: the table's *validation* metric, the only number the optimiser sees (its fitness);
- ``test``: the table's test metric, what is reported (the incumbent's test regret), never shown to
  the optimiser;
- ``seconds``: the cell's training time from the table, which the simulated wall-clock adds up
  (t_sim, NAS-Bench-1Shot1, Zela et al. 2020, Sec. 5.4).

Cells are found through the space (``space.key(arch)``), so one problem serves NB201 tables,
``lightning_nas.tabulate`` tables (the complete digits table), NAS-Bench-101 and NAS-Bench-1Shot1
(through NAS-Bench-101). ``Tables`` subclasses say where the three numbers live; the command line
names one by class path (``recipes/blackbox/nb201_digits_729.yaml``).
"""
from __future__ import annotations

import csv
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Union

from lightning_nas.benchmarks import Benchmark, GroundTruthError, TableBenchmark
from lightning_nas.benchmarks.tabulated import key_column_of, resolve_table


@dataclass(frozen=True)
class Query:
    """One look-up: the cell's key, validation and test metric, training seconds, and the epoch budget
    the validation metric and the seconds are of (None: the table's only one)."""

    key: str
    valid: float
    test: float
    seconds: float
    epochs: Optional[int] = None


class ColumnMean(TableBenchmark):
    """The mean of several columns of a CSV table per architecture (e.g. a subset of the seeds of a
    ``lightning_nas.tabulate`` table); one column is the column itself. Blank cells are an error."""

    def __init__(self, path: str, columns: Union[str, list[str]], higher_is_better: bool = True,
                 key_column: Optional[str] = None) -> None:
        self.path = resolve_table(path)
        self.columns = [columns] if isinstance(columns, str) else list(columns)
        self.metric = "+".join(self.columns)
        self.higher_is_better = higher_is_better
        self.key_column = key_column or key_column_of(self.path)
        self.source = str(self.path)
        self._table: Optional[dict[str, float]] = None

    def table(self) -> dict[str, float]:
        if self._table is None:
            with self.path.open(newline="") as handle:
                rows = csv.DictReader(line for line in handle if not line.startswith("#"))
                present = rows.fieldnames or []
                for column in [self.key_column, *self.columns]:
                    if column not in present:
                        raise GroundTruthError(f"benchmark: column {column!r} is not in {self.path}; "
                                               f"columns: {', '.join(present)}")
                table: dict[str, float] = {}
                for number, row in enumerate(rows, start=2):
                    try:
                        values = [float(row[c]) for c in self.columns]
                    except (TypeError, ValueError):
                        raise GroundTruthError(f"{self.path}:{number}: {self.columns} must all be numbers, got "
                                               f"{[row[c] for c in self.columns]}") from None
                    if not all(math.isfinite(v) for v in values):
                        raise GroundTruthError(f"{self.path}:{number}: {self.columns} holds a NaN or infinity")
                    table[row[self.key_column]] = sum(values) / len(values)
            if not table:
                raise GroundTruthError(f"{self.path} holds no architectures")
            self._table = table
        return self._table


class TableProblem:
    """Validation, test and training time of every cell, looked up through ``space.key``.

    Args:
        space: the search space whose architectures the optimisers propose (its decisions).
        valid: the benchmark of the validation metric (what the optimiser sees).
        test: the table of the test metric (reported; its best entry defines the regret).
        seconds: training seconds per cell (a benchmark of them, or one number for every cell).
        scale: the metric's full scale (100 for percent, 1 for fractions): REINFORCE's reward is
            ``valid / scale`` so that its learning rate means what it meant on NAS-Bench-101.
        epochs: the epoch budget of ``valid``, ``test`` and ``seconds`` (the largest fidelity), where the
            table has several; None for a table of one training protocol.
        fidelities: lower epoch budgets -> (their validation benchmark, their training seconds), for
            multi-fidelity optimisers (BOHB). A query at a lower budget returns that budget's
            validation and seconds but the test metric of ``epochs``, as Ying et al.'s released
            NAS-Bench-101 wrappers (``record_valid`` of automl/nas_benchmarks): the incumbent is chosen
            by validation over all budgets, its test regret is that of the final budget.
    """

    def __init__(self, space: Any, valid: Benchmark, test: TableBenchmark, seconds: Union[Benchmark, float],
                 scale: float = 100.0, epochs: Optional[int] = None,
                 fidelities: Optional[Mapping[int, tuple[Benchmark, Union[Benchmark, float]]]] = None) -> None:
        same_column = (getattr(valid, "metric", None) == getattr(test, "metric", object())
                       and getattr(valid, "path", None) == getattr(test, "path", object()))
        if valid is test or same_column:
            raise GroundTruthError("benchmark: the validation metric is the test metric; the incumbent must be "
                                   "chosen by validation, never by test")
        self.space, self.valid, self.test, self.seconds, self.scale = space, valid, test, seconds, float(scale)
        self.higher_is_better = bool(test.higher_is_better)
        self.epochs = epochs
        self.fidelities = dict(fidelities or {})
        if self.fidelities and (epochs is None or any(e >= epochs for e in self.fidelities)):
            raise GroundTruthError(f"benchmark: lower fidelities {sorted(self.fidelities)} must lie below the final "
                                   f"budget, got epochs={epochs}")

    @property
    def budgets(self) -> tuple[Optional[int], ...]:
        """The epoch budgets a query may ask for, ascending, the last the final one; ``(None,)`` for a
        table of one training protocol (a single fidelity)."""
        return (*sorted(self.fidelities), self.epochs)

    def key(self, arch: Any) -> str:
        return self.space.key(arch)

    def query(self, arch: Any, epochs: Optional[int] = None) -> Query:
        """The cell's numbers at ``epochs`` (default: the final budget); an epoch budget the problem
        does not have is one line naming the ones it has."""
        key = self.key(arch)
        valid, seconds = self.valid, self.seconds
        if epochs is not None and epochs != self.epochs:
            if epochs not in self.fidelities:
                raise GroundTruthError(f"benchmark: no epoch budget {epochs}; this problem has "
                                       f"{[b for b in self.budgets if b is not None] or 'one fidelity'}")
            valid, seconds = self.fidelities[epochs]
        seconds = seconds if isinstance(seconds, (int, float)) else seconds.query(key)
        return Query(key, float(valid.query(key)), float(self.test.query(key)), float(seconds),
                     self.epochs if epochs is None else epochs)

    def fitness(self, valid: float) -> float:
        """The validation metric as a reward: higher is better, on a 0-1 scale for accuracies."""
        return (valid if self.higher_is_better else -valid) / self.scale

    def better(self, a: float, b: float) -> bool:
        """Is validation value ``a`` strictly better than ``b``?"""
        return a > b if self.higher_is_better else a < b

    def best_test(self) -> float:
        return self.test.best()

    def test_regret(self, test: float) -> float:
        return self.best_test() - test if self.higher_is_better else test - self.best_test()

    def describe(self) -> dict[str, Any]:
        """What the records say about the problem (tables, columns, sizes)."""
        def name(b: Any) -> Any:
            return b if isinstance(b, (int, float)) else {"source": Path(str(getattr(b, "source", b))).name,
                                                          "metric": getattr(b, "metric", None)}

        out = {"space": getattr(self.space, "name", str(self.space)), "size": len(self.test),
               "valid": name(self.valid), "test": name(self.test), "seconds": name(self.seconds),
               "higher_is_better": self.higher_is_better, "best_test": self.best_test()}
        if self.fidelities:
            out["budgets"] = list(self.budgets)
        return out


class Tables(ABC):
    """Where a problem's numbers live; ``build()`` makes the ``TableProblem``."""

    @abstractmethod
    def build(self) -> TableProblem:
        """The problem (reads the tables)."""

    def sources(self) -> list[Path]:
        """The files the numbers come from (their sha256 goes into the records)."""
        return []


class CSVTables(Tables):
    """Tables written by ``lightning_nas.tabulate`` or NB201-style CSVs.

    Args:
        space: registered space name; ``space_options`` its options.
        table: the test table (a path or a shipped table's name); ``test_metric`` its column, or
            several columns whose mean is the metric.
        valid_table: the table holding the validation column (default: ``table``); ``valid_metric``
            its column(s). There is no default that falls back to the test column.
        times: a ``T.times.csv`` written by ``lightning_nas.tabulate`` (a path or shipped name);
            ``time_column`` its column (``cpu_seconds_mean``: the CPU seconds of one training, which
            other load on a shared machine does not inflate; ``train_seconds_mean``: wall-clock).
        seconds_per_query: one training time for every cell, where the table has none.
        higher_is_better: False for errors and losses; ``scale``: 100 for percent, 1 for fractions.
    """

    def __init__(self, space: str = "nb201", space_options: Optional[dict] = None,
                 table: str = "nb201_digits_729.csv", test_metric: Union[str, list[str]] = "test_accuracy_mean",
                 valid_table: Optional[str] = None, valid_metric: Union[str, list[str]] = "val_accuracy_mean",
                 times: Optional[str] = None, time_column: str = "cpu_seconds_mean",
                 seconds_per_query: Optional[float] = None, higher_is_better: bool = True,
                 scale: float = 100.0) -> None:
        self.space, self.space_options = space, dict(space_options or {})
        self.table, self.test_metric = table, test_metric
        self.valid_table, self.valid_metric = valid_table, valid_metric
        self.times, self.time_column, self.seconds_per_query = times, time_column, seconds_per_query
        self.higher_is_better, self.scale = higher_is_better, scale

    def build(self) -> TableProblem:
        from lightning_nas.spaces import SPACES

        space = SPACES.get(self.space)(**self.space_options)
        test = ColumnMean(self.table, self.test_metric, self.higher_is_better)
        valid = ColumnMean(self.valid_table or self.table, self.valid_metric, self.higher_is_better)
        if self.times is not None:
            seconds: Union[Benchmark, float] = ColumnMean(self.times, self.time_column, higher_is_better=False)
        elif self.seconds_per_query is not None:
            seconds = float(self.seconds_per_query)
        else:
            raise GroundTruthError("benchmark.times: the simulated wall-clock needs each cell's training time; name "
                                   "the table's .times.csv (lightning_nas.tabulate writes one) or set "
                                   "benchmark.seconds_per_query")
        missing = [k for k in test.table() if k not in valid.table()]
        if missing:
            raise GroundTruthError(f"benchmark.valid_table: {len(missing)} cells of {test.path.name} have no "
                                   f"validation value in {valid.path.name} (first: {missing[0]})")
        if not isinstance(seconds, float):
            absent = [k for k in test.table() if k not in seconds.table()]
            if absent:
                raise GroundTruthError(f"benchmark.times: {len(absent)} cells of {test.path.name} have no training "
                                       f"time in {seconds.path.name} (first: {absent[0]})")
        test.check(space)
        return TableProblem(space, valid, test, seconds, scale=self.scale)

    def sources(self) -> list[Path]:
        paths = [resolve_table(self.table)]
        for extra in (self.valid_table, self.times):
            if extra is not None and resolve_table(extra) not in paths:
                paths.append(resolve_table(extra))
        return paths


class NB101Tables(Tables):
    """NAS-Bench-101 (Ying et al. 2019): the validation and test accuracy (mean over the repeats) and
    the training time at ``epochs`` of every cell; space ``nb101`` or ``nb1shot1`` (NAS-Bench-1Shot1's
    spaces 1-3 through NAS-Bench-101, ``space_options: {search_space: 1}``), whose best cell defines
    regret where ``best`` is given (``docs/nb101.md`` lists them).

    ``budgets``: the lower epoch budgets a multi-fidelity optimiser (BOHB) may query, each with its own
    validation accuracy and training time (Ying et al. Sec. 5: 4, 12 and 36 epochs below 108).
    Default: every budget below ``epochs`` that the file holds (``nasbench_full.tfrecord``: 4, 12, 36;
    ``nasbench_only108.tfrecord``: none, a single fidelity); ``[]`` for none."""

    def __init__(self, path: str, space: str = "nb101", space_options: Optional[dict] = None, epochs: int = 108,
                 best: Optional[float] = None, budgets: Optional[list[int]] = None) -> None:
        self.path, self.space, self.space_options, self.epochs, self.best = path, space, dict(space_options or {}), epochs, best
        self.budgets = None if budgets is None else [int(b) for b in budgets]

    def build(self) -> TableProblem:
        from lightning_nas.benchmarks import NB101Benchmark
        from lightning_nas.spaces import SPACES

        space = SPACES.get(self.space)(**self.space_options)
        test = NB101Benchmark(self.path, "test_accuracy", self.epochs, best=self.best)
        test.check(space)
        valid = NB101Benchmark(self.path, "validation_accuracy", self.epochs)
        seconds = NB101Benchmark(self.path, "training_time", self.epochs)
        lower = [b for b in test.budgets if b < self.epochs] if self.budgets is None else self.budgets
        wrong = [b for b in lower if b >= self.epochs or b not in test.budgets]
        if wrong:
            raise GroundTruthError(f"benchmark.budgets: {wrong[0]} is not an epoch budget below {self.epochs} of "
                                   f"{self.path} (it holds {list(test.budgets)})")
        fidelities = {b: (NB101Benchmark(self.path, "validation_accuracy", b), NB101Benchmark(self.path, "training_time", b))
                      for b in sorted(set(lower))}
        return TableProblem(space, valid, test, seconds, scale=1.0, epochs=self.epochs, fidelities=fidelities)

    def sources(self) -> list[Path]:
        return [Path(self.path)]


def build_tables(spec: Mapping[str, Any]) -> Tables:
    """A ``Tables`` from ``{class_path, init_args}`` (what a recipe's ``benchmark`` holds; the tuning
    objective's ``benchmark``); a class that is not a ``Tables`` is one line naming it."""
    import importlib

    path = str(spec.get("class_path", ""))
    module, _, name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        cls = None
    if not (isinstance(cls, type) and issubclass(cls, Tables)):
        raise ValueError(f"class_path {path!r} is not a lightning_nas.blackbox Tables class (CSVTables, NB101Tables)")
    return cls(**dict(spec.get("init_args") or {}))
