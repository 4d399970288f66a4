"""Ground-truth benchmarks behind the ``Benchmark`` interface (queried by ``space.key(arch)``)."""
from lightning_nas.benchmarks.base import Benchmark, GroundTruthError, TableBenchmark, ground_truth_summary
from lightning_nas.benchmarks.csv_table import CSVBenchmark
from lightning_nas.benchmarks.nasbench101 import NB101Benchmark
from lightning_nas.benchmarks.nasbench201 import NB201Benchmark
from lightning_nas.benchmarks.nds import NDSBenchmark
from lightning_nas.benchmarks.tabulated import TabulatedBenchmark

__all__ = ["Benchmark", "CSVBenchmark", "GroundTruthError", "NB101Benchmark", "NB201Benchmark", "NDSBenchmark",
           "TableBenchmark", "TabulatedBenchmark",
           "ground_truth_summary"]
