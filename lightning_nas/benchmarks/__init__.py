"""Ground-truth tables (tabular NAS benchmarks) behind the ``Benchmark`` interface."""
from lightning_nas.benchmarks.base import Benchmark, GroundTruthError
from lightning_nas.benchmarks.csv_table import CSVBenchmark
from lightning_nas.benchmarks.tabulated import TabulatedBenchmark

__all__ = ["Benchmark", "CSVBenchmark", "GroundTruthError", "TabulatedBenchmark"]
