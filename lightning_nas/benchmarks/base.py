"""Ground truth behind one interface: an architecture's true metric, the table, ranks.

A benchmark is keyed by the architecture's text form (``str(arch)``), so it is independent of
how the table was stored (CSV here; official NAS-Bench files or a table made by
``lightning_nas.tabulate`` plug in as further subclasses).
"""
from __future__ import annotations

import bisect
from abc import ABC, abstractmethod
from functools import cached_property
from typing import Hashable


class GroundTruthError(LookupError):
    """An architecture is not in the table, or the table cannot be read."""


class Benchmark(ABC):
    """A table ``architecture string -> metric``; ``higher_is_better`` orders it."""

    metric: str = "metric"
    higher_is_better: bool = True

    @abstractmethod
    def table(self) -> dict[str, float]:
        """The whole table (read once, cached by the subclass)."""

    def query(self, arch: Hashable) -> float:
        key = str(arch)
        try:
            return self.table()[key]
        except KeyError:
            raise GroundTruthError(f"{key} is not in the {self.metric} table ({len(self)} architectures)") from None

    def __contains__(self, arch: Hashable) -> bool:
        return str(arch) in self.table()

    def __len__(self) -> int:
        return len(self.table())

    @cached_property
    def _sorted_goodness(self) -> list[float]:
        sign = 1.0 if self.higher_is_better else -1.0
        return sorted(sign * v for v in self.table().values())

    def best(self) -> float:
        values = self.table().values()
        return max(values) if self.higher_is_better else min(values)

    def regret(self, arch: Hashable) -> float:
        """How far ``arch`` is from the best entry (>= 0, in the metric's units)."""
        value = self.query(arch)
        return self.best() - value if self.higher_is_better else value - self.best()

    def rank(self, arch: Hashable) -> int:
        """1 for the best architecture; ties share the best rank (1 + number strictly better)."""
        sign = 1.0 if self.higher_is_better else -1.0
        goodness = sign * self.query(arch)
        strictly_better = len(self._sorted_goodness) - bisect.bisect_right(self._sorted_goodness, goodness)
        return strictly_better + 1
