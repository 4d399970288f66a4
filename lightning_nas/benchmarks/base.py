"""Ground truth behind one interface.

A benchmark answers ``query(key)``: the true metric of the architecture stored under ``key``.
Keys come from the space (``space.key(arch)``: the text form for NB201 and the RNN spaces, the
graph hash of the pruned cell for NAS-Bench-101), so a benchmark never needs to know an
architecture type. That is all a surrogate benchmark offers; a table-backed one
(``TableBenchmark``) also knows every entry, and therefore its size, best value, the rank and
the regret of an architecture.
"""
from __future__ import annotations

import bisect
from abc import ABC, abstractmethod
from functools import cached_property
from typing import Any, Iterator, Optional

from lightning_nas.errors import GroundTruthError  # noqa: F401  (re-exported)


class Benchmark(ABC):
    """The ground-truth ``metric`` of architectures by benchmark key; ``higher_is_better`` orders it."""

    metric: str = "metric"
    higher_is_better: bool = True

    @abstractmethod
    def query(self, key: str) -> float:
        """The metric of ``key``; GroundTruthError if the benchmark cannot answer."""

    def __contains__(self, key: object) -> bool:
        try:
            self.query(str(key))
        except GroundTruthError:
            return False
        return True

    def check(self, space: Any) -> None:  # noqa: B027 - an optional hook: the default accepts every space
        """Raise GroundTruthError (naming the file and line) if this benchmark cannot serve ``space``.

        Called before training starts, so a bad table never costs a training run. An optional hook,
        deliberately a no-op here: a benchmark that can serve any space need not override it."""


class TableBenchmark(Benchmark):
    """A benchmark that holds every entry: adds size, best, rank and regret."""

    @abstractmethod
    def table(self) -> dict[str, float]:
        """The whole table (read once, cached by the subclass)."""

    def query(self, key: str) -> float:
        try:
            return self.table()[key]
        except KeyError:
            raise GroundTruthError(f"{key} is not in the {self.metric} table ({len(self)} architectures)") from None

    def __contains__(self, key: object) -> bool:
        return str(key) in self.table()

    def __len__(self) -> int:
        return len(self.table())

    @cached_property
    def _sorted_goodness(self) -> list[float]:
        sign = 1.0 if self.higher_is_better else -1.0
        return sorted(sign * v for v in self.table().values())

    def best(self) -> float:
        values = self.table().values()
        return max(values) if self.higher_is_better else min(values)

    def regret(self, key: str) -> float:
        """How far ``key`` is from the best entry (>= 0, in the metric's units)."""
        value = self.query(key)
        return self.best() - value if self.higher_is_better else value - self.best()

    def rank(self, key: str) -> int:
        """1 for the best architecture; ties share the best rank (1 + number strictly better)."""
        sign = 1.0 if self.higher_is_better else -1.0
        goodness = sign * self.query(key)
        strictly_better = len(self._sorted_goodness) - bisect.bisect_right(self._sorted_goodness, goodness)
        return strictly_better + 1

    def check(self, space: Any) -> None:
        """Every entry must be an architecture of ``space``: its text form parses, and its key is that
        architecture's ``space.key`` (where the key is the text form, it is its own key)."""
        for line, text, key in self.entries():
            try:
                arch = space.parse(text)
            except Exception as error:  # noqa: BLE001  the space says why; we add where
                raise GroundTruthError(f"{self.source}:{line}: {text!r} is not a {space.name} "
                                       f"architecture: {error}") from None
            if space.key(arch) != key:
                what = f"is not in the canonical key form of {space.name}" if text == key else \
                    f"is not the {space.name} key of {text!r}"
                raise GroundTruthError(f"{self.source}:{line}: key {key!r} {what} ({space.key(arch)!r})")

    def entries(self) -> Iterator[tuple[int, str, str]]:
        """(line, text form, key) of every entry; a table keyed by the text form gives it as both."""
        for line, key in enumerate(self.table(), start=self.first_line):
            yield self.line_of(key, line), key, key

    #: where the table came from and the line of its first entry (for messages)
    source: str = "table"
    first_line: int = 1

    def line_of(self, key: str, default: int) -> int:
        return default


def ground_truth_summary(benchmark: Optional[Benchmark], key: str) -> dict[str, Any]:
    """Ground truth, and where a table exists rank, regret and table size, of one key ({} if unknown)."""
    if benchmark is None or key not in benchmark:
        return {}
    summary: dict[str, Any] = {"ground_truth": benchmark.query(key)}
    if isinstance(benchmark, TableBenchmark):
        summary.update(rank=benchmark.rank(key), regret=benchmark.regret(key), table_size=len(benchmark))
    return summary
