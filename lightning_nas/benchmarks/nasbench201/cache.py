"""Official NAS-Bench-201 / NATS-Bench files -> columnar ``.npz`` cache (converted once), and the benchmark serving it.

``convert(source, cache)`` reads the ``.pth`` file or NATS folder (``files``: allow-listed, streamed) and
writes one uncompressed ``.npz`` atomically (``lightning_nas.io``; no pickle in it, loaded with
``allow_pickle=False``):

- ``archs`` (S, one per architecture: the project's nb201 key, which is the benchmark's own string);
- per trial: ``arch`` (int32 index), ``dataset`` (int8 index into ``records.DATASETS``), ``seed`` (int32),
  ``epochs`` (int16: the budget, 12 or 200), ``metrics`` (float64, columns ``records.METRICS``; NaN where
  the file has no value, e.g. a split a data set is not evaluated on).

``NB201Benchmark`` answers by architecture string for one (data set, split, metric, budget), the mean
over the seeds the benchmark lists for each architecture (the API's ``get_metrics(..., is_random=False)``)
or one seed's value (``is_random=seed``).
"""
from __future__ import annotations

import array
import math
from functools import cached_property
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from lightning_nas.benchmarks.base import TableBenchmark
from lightning_nas.benchmarks.nasbench201.files import EXPECTED, read_rows
from lightning_nas.benchmarks.nasbench201.records import BUDGETS, DATASETS, METRICS, SPLITS
from lightning_nas.errors import GroundTruthError
from lightning_nas.io import atomic_write_bytes

FORMAT = 1
CACHE_COLUMNS = ("archs", "arch", "dataset", "seed", "epochs", "metrics")
#: metrics a query can ask for: per split (``<split>_<metric>``) or per trial
SPLIT_METRICS = ("accuracy", "loss")
TRIAL_METRICS = ("train_time", "params", "flops", "latency")


def default_cache(source: Union[str, Path]) -> Path:
    """Where ``convert`` puts the cache of ``source`` unless told: beside it, ``.npz`` appended."""
    return Path(str(Path(source)).rstrip("/") + ".npz")


def convert(source: Union[str, Path], cache: Union[str, Path, None] = None, stream: bool = True) -> Path:
    """Convert ``source`` (a ``.pth``, NATS' ``.pickle.pbz2`` or ``*-simple`` folder) into the ``cache`` .npz,
    unless it exists."""
    source = Path(source).expanduser()
    cache = Path(cache) if cache is not None else default_cache(source)
    if cache.exists():
        return cache
    index: dict[str, int] = {}
    arch, dataset, seed, epochs = array.array("i"), array.array("b"), array.array("i"), array.array("h")
    metrics = array.array("d")

    def sink(row: tuple) -> None:
        name, data, s, budget, values = row
        if data not in DATASETS:
            raise GroundTruthError(f"{source}: unknown data set {data!r} (known: {', '.join(DATASETS)})")
        arch.append(index.setdefault(name, len(index)))
        dataset.append(DATASETS.index(data))
        seed.append(s)
        epochs.append(budget)
        metrics.extend(values)

    read_rows(source, sink, stream=stream)
    if not index:
        raise GroundTruthError(f"{source} holds no trained architecture: expected {EXPECTED}")
    columns = dict(format=np.array(FORMAT), archs=np.array(list(index), dtype="S"),
                   arch=np.frombuffer(arch, dtype=np.int32), dataset=np.frombuffer(dataset, dtype=np.int8),
                   seed=np.frombuffer(seed, dtype=np.int32), epochs=np.frombuffer(epochs, dtype=np.int16),
                   metrics=np.frombuffer(metrics, dtype=np.float64).reshape(-1, len(METRICS)),
                   metric_names=np.array(METRICS, dtype="S"), dataset_names=np.array(DATASETS, dtype="S"))
    atomic_write_bytes(cache, lambda handle: np.savez(handle, **columns))
    return cache


def load_cache(path: Path) -> dict[str, np.ndarray]:
    """The columns of a cache ``convert`` wrote; one line for anything else."""
    try:
        with np.load(path, allow_pickle=False) as data:
            columns = {k: data[k] for k in data.files}
    except Exception:  # not a zip, truncated, pickled arrays: all mean "not our cache"
        raise GroundTruthError(f"{path} is not a NAS-Bench-201 cache (not a readable .npz archive): expected the .npz "
                               f"that convert() writes from {EXPECTED}") from None
    missing = [k for k in CACHE_COLUMNS if k not in columns]
    if missing or int(columns.get("format", -1)) != FORMAT:
        raise GroundTruthError(f"{path} is not a NAS-Bench-201 cache of format {FORMAT} (missing: "
                               f"{', '.join(missing) or 'none'}): remove it and convert {EXPECTED} again")
    return columns


class NB201Benchmark(TableBenchmark):
    """NAS-Bench-201 / NATS-Bench (topology) ground truth by nb201 architecture string.

    Args:
        path: ``NAS-Bench-201-v1_0-e61699.pth``, ``NAS-Bench-201-v1_1-096897.pth``, NATS-Bench's
            ``NATS-tss-v1_0-3ffb9.pickle.pbz2`` or its folder ``NATS-tss-v1_0-3ffb9-simple``, or a cache .npz;
            an official file is converted once to ``cache``.
        dataset: ``cifar10-valid``, ``cifar10`` (default; trained on train+valid), ``cifar100``, ``ImageNet16-120``.
        split: ``train``, ``x-valid``, ``x-test`` or ``ori-test`` (default), as the benchmark's API names
            them; which exist depends on the data set (``records.SPLITS``).
        metric: ``accuracy`` (%, default), ``loss``, or a cost: ``train_time`` (seconds, all epochs), ``params``
            (MB), ``flops`` (M), ``latency`` (s).
        epochs: the budget, 12 or 200 (default). v1.0 trains 12 epochs on cifar10-valid only.
        seed: None for the mean over the seeds each architecture was trained with (the API's
            ``is_random=False``), or one seed (777, 888, 999 at 200 epochs; 111, 777 at 12).
        cache: where the cache goes (default: beside ``path``, ``.npz`` appended).
        stream: read a ``.pth`` streamed (default; memory of one architecture) or whole with
            ``torch.load(weights_only=True)``.

    The defaults (CIFAR-10 test accuracy after 200 epochs, mean over seeds) are the column
    ``CIFAR10TestAccuracy200Epochs`` the NB201 recipes used (Dong & Yang 2020, Table 5's "CIFAR-10 test").
    """

    def __init__(self, path: str, dataset: str = "cifar10", split: str = "ori-test", metric: str = "accuracy",
                 epochs: int = 200, seed: Optional[int] = None, cache: Optional[str] = None,
                 stream: bool = True) -> None:
        source = Path(path).expanduser()
        if source.suffix != ".npz":
            if not source.exists() and not (cache and Path(cache).exists()) and not default_cache(source).exists():
                raise GroundTruthError(f"benchmark.path: {source} does not exist: expected {EXPECTED}")
            source = convert(source, cache, stream=stream)
        elif not source.is_file():
            raise GroundTruthError(f"benchmark.path: NAS-Bench-201 cache {source} does not exist")
        if dataset not in DATASETS:
            raise GroundTruthError(f"benchmark.dataset: {dataset!r} is not a NAS-Bench-201 data set; known: "
                                   f"{', '.join(DATASETS)}")
        if metric in TRIAL_METRICS:
            column = metric
        elif metric in SPLIT_METRICS:
            if split not in SPLITS[dataset]:
                raise GroundTruthError(f"benchmark.split: {split!r} is not a split of {dataset}; its splits: "
                                       f"{', '.join(SPLITS[dataset])}")
            column = f"{split}_{metric}"
        else:
            raise GroundTruthError(f"benchmark.metric: {metric!r} is unknown; known: "
                                   f"{', '.join(SPLIT_METRICS + TRIAL_METRICS)}")
        if epochs not in BUDGETS:
            raise GroundTruthError(f"benchmark.epochs: NAS-Bench-201 budgets are {', '.join(map(str, BUDGETS))}, "
                                   f"not {epochs}")
        self.path, self.source = source, str(source)
        self.dataset, self.split, self.metric, self.epochs, self.seed = dataset, split, metric, epochs, seed
        self.higher_is_better = metric == "accuracy"
        self.data = load_cache(source)
        d = self.data
        here = (d["dataset"] == DATASETS.index(dataset)) & (d["epochs"] == epochs)
        if not here.any():
            held = {(int(a), int(b)) for a, b in zip(d["dataset"], d["epochs"], strict=True)}
            what = [f"{name} ({', '.join(str(b) for b in BUDGETS if (i, b) in held)} epochs)"
                    for i, name in enumerate(DATASETS) if any((i, b) in held for b in BUDGETS)]
            raise GroundTruthError(f"benchmark: {source} holds no {dataset} results at {epochs} epochs; it holds: "
                                   + ", ".join(what))
        if seed is not None:
            seeds = sorted({int(s) for s in d["seed"][here]})
            if seed not in seeds:
                raise GroundTruthError(f"benchmark.seed: {source} has no {dataset} run at {epochs} epochs with seed "
                                       f"{seed}; its seeds: {', '.join(map(str, seeds))} (or null for the mean)")
            here &= d["seed"] == seed
        self.column = METRICS.index(column)
        values = d["metrics"][here, self.column]
        if np.isnan(values).all():
            raise GroundTruthError(f"benchmark: {source} records no {column} for {dataset} at {epochs} epochs")
        self.rows = np.flatnonzero(here)

    @cached_property
    def keys(self) -> list[str]:
        return [a.decode("ascii") for a in self.data["archs"].tolist()]

    @cached_property
    def _table(self) -> dict[str, float]:
        d = self.data
        rows = self.rows[~np.isnan(d["metrics"][self.rows, self.column])]
        arch = d["arch"][rows]
        sums = np.bincount(arch, weights=d["metrics"][rows, self.column], minlength=len(self.keys))
        counts = np.bincount(arch, minlength=len(self.keys))
        return {self.keys[i]: float(sums[i] / counts[i]) for i in np.flatnonzero(counts)}

    def table(self) -> dict[str, float]:
        return self._table

    @cached_property
    def _index(self) -> dict[str, int]:
        return {k: i for i, k in enumerate(self.keys)}

    def seed_values(self, key: str) -> dict[int, float]:
        """Seed -> value of ``key`` under this benchmark's data set, split, metric and budget."""
        i = self._index.get(str(key))
        if i is None:
            raise GroundTruthError(f"{key} is not in {self.source} ({len(self.keys)} architectures)")
        d = self.data
        return {int(d["seed"][r]): float(d["metrics"][r, self.column]) for r in self._rows_of.get(i, ())
                if not math.isnan(d["metrics"][r, self.column])}

    @cached_property
    def _rows_of(self) -> dict[int, np.ndarray]:
        """Architecture index -> this query's rows of it (grouped once, so a per-seed lookup is not a scan)."""
        arch = self.data["arch"][self.rows]
        order = np.argsort(arch, kind="stable")
        groups = np.split(self.rows[order], np.flatnonzero(np.diff(arch[order])) + 1)
        return {int(self.data["arch"][g[0]]): g for g in groups if len(g)}

    def record(self, key: str) -> dict[str, Any]:
        """Everything the cache holds for ``key``: data set -> budget -> seed -> metric -> value."""
        i = self._index.get(str(key))
        if i is None:
            raise GroundTruthError(f"{key} is not in {self.source} ({len(self.keys)} architectures)")
        d = self.data
        out: dict[str, Any] = {}
        for r in np.flatnonzero(d["arch"] == i):
            values = {m: float(v) for m, v in zip(METRICS, d["metrics"][r], strict=True) if not math.isnan(v)}
            out.setdefault(DATASETS[int(d["dataset"][r])], {}).setdefault(int(d["epochs"][r]), {})[int(d["seed"][r])] = values
        return out
