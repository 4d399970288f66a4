"""NAS-Bench-201 and NATS-Bench (topology) official files without their package: safe readers, a columnar cache."""
from lightning_nas.benchmarks.nasbench201.cache import NB201Benchmark, convert, default_cache, load_cache
from lightning_nas.benchmarks.nasbench201.files import read_nats_folder, read_pth, read_rows
from lightning_nas.benchmarks.nasbench201.records import BUDGETS, DATASETS, METRICS, SPLITS

__all__ = ["BUDGETS", "DATASETS", "METRICS", "NB201Benchmark", "SPLITS", "convert", "default_cache", "load_cache",
           "read_nats_folder", "read_pth", "read_rows"]
