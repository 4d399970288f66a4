"""Official NAS-Bench-101 ``.tfrecord`` -> columnar ``.npz`` cache (streamed, resumable), and the benchmark serving it.

``convert(tfrecord, cache)`` streams the records (one at a time), checks their CRC-32C, and writes
a part file every ``chunk`` records into ``<cache>.partial/`` together with ``progress.json``
(byte offset and record count of the last completed part, written after the part). Interrupted,
the next ``convert`` call resumes at that offset; finished, the parts are merged into one
uncompressed ``.npz`` (memory-mapped friendly columns, no pickle). Every file (part, progress,
cache) is written atomically (``lightning_nas.io``: a temporary file in the same directory, fsynced,
renamed), so a kill leaves the last completed state. A file that holds no NAS-Bench-101 record (0
bytes after a failed download, or another file) is one ``GroundTruthError`` line naming it, and
leaves no cache and no partial conversion behind; a cache without cells is refused when loaded.

- per cell: ``hash`` (S32), ``adjacency`` (row-major 0/1 bytes), ``operations`` (comma-joined
  bytes), ``trainable_parameters`` (int64);
- per record: ``cell`` (int32 index), ``epochs`` (int16), ``repeat`` (int8, order of appearance
  within cell and budget), ``metrics`` (float32, columns ``records.METRICS``).

``NB101Benchmark`` answers by graph hash (``space.key``), validation or test accuracy (mean over
repeats) at a budget; ``record(key)`` gives everything: each repeat's halfway and final metrics
per budget, parameters, training time.
"""
from __future__ import annotations

import json
import shutil
from functools import cached_property
from pathlib import Path
from typing import Any, Iterator, Optional, Union

import numpy as np

from lightning_nas.benchmarks.base import TableBenchmark
from lightning_nas.benchmarks.nasbench101.records import METRICS, parse_row
from lightning_nas.benchmarks.nasbench101.tfrecord import TFRecordError, read_records
from lightning_nas.errors import GroundTruthError
from lightning_nas.io import atomic_write_bytes, atomic_write_json

EPOCH_BUDGETS = (4, 12, 36, 108)
FORMAT = 1
# the two files of the benchmark and their sizes, as the NAS-Bench-101 README lists them (google-research/nasbench)
EXPECTED = ("an official NAS-Bench-101 file (nasbench_only108.tfrecord, 499 MB, or nasbench_full.tfrecord, "
            "2.0 GB, from the benchmark's page)")


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    atomic_write_bytes(path, lambda handle: np.savez(handle, **arrays))


def _check_source(tfrecord: Path) -> None:
    if not tfrecord.is_file():
        raise GroundTruthError(f"NAS-Bench-101 file {tfrecord} does not exist: expected {EXPECTED}")
    if tfrecord.stat().st_size == 0:
        raise GroundTruthError(f"NAS-Bench-101 file {tfrecord} is empty (0 bytes, a failed download?): expected "
                               f"{EXPECTED}")


def convert(tfrecord: Union[str, Path], cache: Union[str, Path], chunk: int = 100_000, verify: bool = True,
            max_parts: Optional[int] = None) -> bool:
    """Convert ``tfrecord`` into the ``cache`` .npz; True when the cache is complete.

    ``max_parts`` stops after writing that many parts in this call (False returned; call again to
    resume), the same state an interruption leaves."""
    tfrecord, cache = Path(tfrecord), Path(cache)
    if cache.exists():
        return True
    _check_source(tfrecord)
    partial = Path(str(cache) + ".partial")
    started = partial.exists()
    partial.mkdir(parents=True, exist_ok=True)
    try:
        return _convert(tfrecord, cache, partial, chunk, verify, max_parts)
    except GroundTruthError:
        if not started and not any(partial.glob("part-*.npz")):  # nothing worth resuming: leave nothing behind
            shutil.rmtree(partial, ignore_errors=True)
        raise


def _convert(tfrecord: Path, cache: Path, partial: Path, chunk: int, verify: bool, max_parts: Optional[int]) -> bool:
    progress_file = partial / "progress.json"
    source = {"source": str(tfrecord.resolve()), "size": tfrecord.stat().st_size}
    progress = {**source, "offset": 0, "records": 0, "parts": 0}
    if progress_file.exists():
        saved = json.loads(progress_file.read_text())
        if {k: saved.get(k) for k in source} != source:
            raise GroundTruthError(f"{partial} holds a conversion of another file ({saved.get('source')}); remove it")
        progress = saved
    columns: dict[str, list] = {k: [] for k in ("hash", "epochs", "adjacency", "operations", "params", "metrics")}
    written = 0

    def flush(offset: int, records: int) -> None:
        nonlocal written
        part = partial / f"part-{progress['parts']:05d}.npz"
        _save_npz(part, hash=np.array(columns["hash"], dtype="S32"), epochs=np.array(columns["epochs"], dtype=np.int16),
                 adjacency=np.array(columns["adjacency"], dtype="S"), operations=np.array(columns["operations"], dtype="S"),
                 params=np.array(columns["params"], dtype=np.int64), metrics=np.array(columns["metrics"], dtype=np.float32))
        progress.update(offset=offset, records=records, parts=progress["parts"] + 1)
        atomic_write_json(progress_file, progress)
        for v in columns.values():
            v.clear()
        written += 1

    offset, records = progress["offset"], progress["records"]
    for index, offset, data in _records(tfrecord, progress["offset"], progress["records"], verify):
        row = parse_row(data, f"{tfrecord}: record {index}")
        columns["hash"].append(row.hash.encode("ascii"))
        columns["epochs"].append(row.epochs)
        columns["adjacency"].append(row.adjacency.encode("ascii"))
        columns["operations"].append(row.operations.encode("ascii"))
        columns["params"].append(row.trainable_parameters)
        columns["metrics"].append(row.metrics)
        records = index + 1
        if len(columns["hash"]) >= chunk:
            flush(offset, records)
            if max_parts is not None and written >= max_parts:
                return False
    if columns["hash"]:
        flush(offset, records)
    if progress["records"] == 0:
        raise GroundTruthError(f"NAS-Bench-101 file {tfrecord} holds no record: expected {EXPECTED}")
    _merge(partial, cache, progress["parts"])
    return True


def _records(tfrecord: Path, offset: int, index: int, verify: bool) -> Iterator[tuple[int, int, bytes]]:
    """``read_records``, with a file whose very first record is bad named as what it is: not a TFRecord."""
    try:
        yield from read_records(tfrecord, offset, index, verify)
    except TFRecordError as error:
        if index > 0 or offset > 0 or "record 0 " not in str(error):
            raise
        raise GroundTruthError(f"{tfrecord} is not a TFRecord file ({str(error).removeprefix(f'{tfrecord}: ')}): "
                               f"expected {EXPECTED}") from None


def _merge(partial: Path, cache: Path, parts: int) -> None:
    index: dict[bytes, int] = {}
    cell_hash, cell_adj, cell_ops, cell_params = [], [], [], []
    rec_cell, rec_epochs, rec_repeat, rec_metrics = [], [], [], []
    seen: dict[tuple[int, int], int] = {}
    for p in range(parts):
        with np.load(partial / f"part-{p:05d}.npz") as part:
            hashes, adjs, ops, params = part["hash"], part["adjacency"], part["operations"], part["params"]
            epochs = part["epochs"]
            cells = np.empty(len(hashes), dtype=np.int32)
            repeats = np.empty(len(hashes), dtype=np.int8)
            for i, h in enumerate(hashes.tolist()):
                c = index.get(h)
                if c is None:
                    c = index[h] = len(cell_hash)
                    cell_hash.append(h)
                    cell_adj.append(adjs[i])
                    cell_ops.append(ops[i])
                    cell_params.append(params[i])
                cells[i] = c
                k = (c, int(epochs[i]))
                repeats[i] = seen.get(k, 0)
                seen[k] = repeats[i] + 1
            rec_cell.append(cells)
            rec_epochs.append(epochs)
            rec_repeat.append(repeats)
            rec_metrics.append(part["metrics"])
    empty = lambda dtype: np.zeros(0, dtype=dtype)  # noqa: E731
    _save_npz(cache, format=np.array(FORMAT), hash=np.array(cell_hash, dtype="S32"), adjacency=np.array(cell_adj, dtype="S"),
             operations=np.array(cell_ops, dtype="S"), trainable_parameters=np.array(cell_params, dtype=np.int64),
             cell=np.concatenate(rec_cell) if rec_cell else empty(np.int32),
             epochs=np.concatenate(rec_epochs) if rec_epochs else empty(np.int16),
             repeat=np.concatenate(rec_repeat) if rec_repeat else empty(np.int8),
             metrics=np.concatenate(rec_metrics) if rec_metrics else np.zeros((0, len(METRICS)), np.float32),
             metric_names=np.array(METRICS, dtype="S"))
    shutil.rmtree(partial)


CACHE_COLUMNS = ("hash", "adjacency", "operations", "trainable_parameters", "cell", "epochs", "repeat", "metrics")


def load_cache(path: Path) -> dict[str, np.ndarray]:
    """The columns of a cache written by ``convert``; one line for another file or a cache without cells."""
    try:
        with np.load(path, allow_pickle=False) as data:
            columns = {k: data[k] for k in data.files}
    except Exception:  # not a zip, a truncated zip, a pickled array: all mean "not our cache"
        raise GroundTruthError(f"{path} is not a NAS-Bench-101 cache (not a readable .npz archive): expected the "
                               f".npz that convert() writes from {EXPECTED}") from None
    missing = [k for k in CACHE_COLUMNS if k not in columns]
    if missing:
        raise GroundTruthError(f"{path} is not a NAS-Bench-101 cache (no {', '.join(missing)} columns): expected the "
                               f".npz that convert() writes from {EXPECTED}")
    if columns["hash"].size == 0:
        raise GroundTruthError(f"NAS-Bench-101 cache {path} holds no cell (written from an empty file?): remove it "
                               f"and convert {EXPECTED}")
    return columns


class NB101Benchmark(TableBenchmark):
    """NAS-Bench-101 by graph hash: ``metric`` (``test_accuracy``/``validation_accuracy``/``train_accuracy``/
    ``training_time``) at ``epochs`` (4, 12, 36, 108), the mean over repeats; ``halfway=True`` the
    halfway evaluation. ``path``: the cache (.npz), or an official .tfrecord, converted once to
    ``cache`` (default: the .tfrecord's path with ``.npz`` appended). ``best`` overrides the best
    value that regrets refer to (default: the best of the whole table); NAS-Bench-1Shot1 measures
    regret against the best cell of each search space (``docs/nb101.md`` lists them)."""

    def __init__(self, path: Union[str, Path], metric: str = "test_accuracy", epochs: int = 108, halfway: bool = False,
                 cache: Optional[Union[str, Path]] = None, best: Optional[float] = None) -> None:
        path = Path(path).expanduser()
        if path.suffix == ".tfrecord":
            cache = Path(cache) if cache is not None else Path(str(path) + ".npz")
            if not path.exists() and not cache.exists():
                raise GroundTruthError(f"NAS-Bench-101 file {path} does not exist (download nasbench_only108.tfrecord or "
                                       "nasbench_full.tfrecord from the benchmark's page)")
            convert(path, cache)
            path = cache
        if not path.exists():
            raise GroundTruthError(f"NAS-Bench-101 cache {path} does not exist")
        column = f"{'halfway' if halfway else 'final'}_{metric}"
        if column not in METRICS:
            raise GroundTruthError(f"unknown NAS-Bench-101 metric {metric!r}; known: test_accuracy, validation_accuracy, "
                                   "train_accuracy, training_time")
        if epochs not in EPOCH_BUDGETS:
            raise GroundTruthError(f"NAS-Bench-101 epoch budgets are {EPOCH_BUDGETS}, got {epochs}")
        self.path, self.source = path, str(path)
        self.metric, self.epochs, self.column = metric, epochs, METRICS.index(column)
        self.higher_is_better = metric != "training_time"
        self.best_override = best
        self.data = load_cache(path)
        self.budgets = tuple(sorted(int(e) for e in np.unique(self.data["epochs"])))
        if self.data["epochs"].size and epochs not in self.budgets:
            raise GroundTruthError(f"{path} holds epoch budgets {self.budgets}, not {epochs} (the 108-epoch file has only 108)")

    @cached_property
    def index(self) -> dict[str, int]:
        return {h.decode("ascii"): i for i, h in enumerate(self.data["hash"].tolist())}

    @staticmethod
    def key_of(key: Any) -> str:
        """A hash string, an NB101 cell (its pruned graph hash) or anything with ``to_nb101()`` (NAS-Bench-1Shot1)."""
        if hasattr(key, "to_nb101"):
            key = key.to_nb101()
        return key.hash if hasattr(key, "hash") and not isinstance(key, str) else str(key)

    @cached_property
    def _table(self) -> dict[str, float]:
        d = self.data
        keep = d["epochs"] == self.epochs
        cells, values = d["cell"][keep], d["metrics"][keep, self.column].astype(np.float64)
        sums = np.bincount(cells, weights=values, minlength=len(d["hash"]))
        counts = np.bincount(cells, minlength=len(d["hash"]))
        hashes = d["hash"].tolist()
        return {hashes[i].decode("ascii"): float(sums[i] / counts[i]) for i in np.flatnonzero(counts)}

    def table(self) -> dict[str, float]:
        return self._table

    def best(self) -> float:
        return self.best_override if self.best_override is not None else super().best()

    def query(self, key: Any) -> float:
        return super().query(self.key_of(key))

    def __contains__(self, key: object) -> bool:
        return self.key_of(key) in self.table()

    def record(self, key: Any) -> dict[str, Any]:
        """Everything stored for one cell: adjacency, operations, parameters and, per budget, one dict per repeat."""
        h = self.key_of(key)
        if h not in self.index:
            raise GroundTruthError(f"{h} is not in NAS-Bench-101 ({self.path}, {len(self.index)} cells)")
        i, d = self.index[h], self.data
        adjacency = d["adjacency"][i].decode("ascii")
        dim = int(round(len(adjacency) ** 0.5))
        rows = np.flatnonzero(d["cell"] == i)
        per_budget: dict[int, list[dict[str, float]]] = {}
        for r in rows[np.lexsort((d["repeat"][rows], d["epochs"][rows]))]:
            per_budget.setdefault(int(d["epochs"][r]), []).append(
                {name: float(v) for name, v in zip(METRICS, d["metrics"][r], strict=True)})
        return {"hash": h, "matrix": [[int(adjacency[u * dim + v]) for v in range(dim)] for u in range(dim)],
                "operations": d["operations"][i].decode("ascii").split(","),
                "trainable_parameters": int(d["trainable_parameters"][i]), "epochs": per_budget}

    def check(self, space: Any) -> None:
        """Keys are graph hashes: the space must produce NB101 keys (``nb101`` or ``nb1shot1``)."""
        if getattr(space, "name", None) not in ("nb101", "nb1shot1"):
            raise GroundTruthError(f"{self.source} is keyed by NAS-Bench-101 graph hashes; space {getattr(space, 'name', space)!r} "
                                   "has other keys (use nb101 or nb1shot1)")
