"""DARTS-NDS: the stand-alone trained DARTS cells of "On Network Design Spaces for Visual Recognition"
(Radosavovic et al., ICCV 2019) as ground truth of the ``darts_cnn`` space.

NDS released one JSON file per *sweep* (a design space and a sampling protocol), each a list of
trained models (a few files wrap the list as ``{"top": [...], "mid": [...]}``). A model of a cell
family records ``net.genotype`` (DARTS' genotype: ``normal``/``reduce`` as flat lists of
``[op, input]`` pairs, two per node, and ``normal_concat``/``reduce_concat``), the macro layout
``net.width``/``net.depth``, the complexity ``params``/``flops``, the protocol ``optim``
(``base_lr``, ``wd``, ``max_ep``), ``rng_seed`` and the per-epoch curves ``test_ep_top1``,
``train_ep_top1`` (top-1 *error*, percent) and ``train_ep_loss``; ``min_test_top1`` is the best
epoch's test error (what the paper's error EDFs use).

Which sweeps map onto ``darts_cnn`` (4 nodes, 2 distinct inputs per node, output = all nodes, 7
operations; NDS' operation names for these 7 are DARTS' own): the DARTS family, ``DARTS.json``
(CIFAR-10, width and depth sampled), ``DARTS_fix-w-d.json`` (one fixed width and depth),
``DARTS_lr-wd.json`` (learning rate and weight decay sampled) and the ImageNet sweeps
``DARTS_in.json``, ``DARTS_lr-wd_in.json``. The other cell families do not: NASNet, Amoeba, PNAS
and ENAS cells have 5 nodes, NASNet/Amoeba/ENAS output only their loose ends, and their operation
sets add ``sep_conv_7x7``, ``conv_7x1_1x7``, ``conv_3x1_1x3``, ``conv_1x1``, ``conv_3x3``,
``dil_sep_conv_3x3`` and 5x5/7x7 pools (ENAS' five operations are all DARTS operations, but its
cells have 5 nodes and loose ends). ResNet/ResNeXt/Vanilla sweeps hold no cells at all.

A record whose cell does not fit is counted by reason (``left_out``) and said in one notice, never
dropped silently. A genotype is keyed by the space's canonical key; several records of one key (other
widths, depths or seeds) are averaged, and ``records(key)`` returns each of them.

The first read converts the JSON once into a columnar ``.npz`` beside it (no pickle: genotypes are
stored as their JSON text), which later reads load instead while the source's size and mtime match.
"""
from __future__ import annotations

import json
import math
import time
from collections import Counter
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from lightning_nas.benchmarks.base import TableBenchmark
from lightning_nas.errors import ArchitectureError, GroundTruthError
from lightning_nas.io import atomic_write_bytes, is_storage_fault
from lightning_nas.run.notices import notice
from lightning_nas.spaces.darts_cnn import CELL_OPERATIONS, CELL_TYPES, DartsCNNSpace, Genotype

FORMAT = 1
#: the NDS sweeps of the DARTS family, the ones whose cells are darts_cnn cells
DARTS_SWEEPS = ("DARTS", "DARTS_fix-w-d", "DARTS_lr-wd", "DARTS_in", "DARTS_lr-wd_in")
EXPECTED = ("an NDS sweep file of the DARTS family (DARTS.json, DARTS_fix-w-d.json, DARTS_lr-wd.json, DARTS_in.json "
            "or DARTS_lr-wd_in.json from the NDS data archive, facebookresearch/nds)")
#: metric -> (stored column, higher_is_better); test_accuracy is 100 minus the stored error
METRICS = {
    "test_error": ("test_error", False),          # final-epoch top-1 test error, percent
    "test_accuracy": ("test_error", True),        # 100 - final-epoch error
    "min_test_error": ("min_test_error", False),  # best epoch's error (NDS' min_test_top1)
    "train_error": ("train_error", False),
}
SCALARS = ("width", "depth", "params", "flops", "epochs", "seed", "base_lr", "wd", "test_error", "min_test_error",
           "train_error")
CURVES = ("test_ep_top1", "train_ep_top1", "train_ep_loss")


class NDSFormatError(GroundTruthError):
    """An NDS file that is not the JSON structure of a cell-family sweep."""


def sweep_path(path: Union[str, Path], sweep: str) -> Path:
    """``path`` itself if it is a file, else ``path/<sweep>.json`` (the layout of the NDS archive)."""
    path = Path(path).expanduser()
    return path / f"{sweep}.json" if path.is_dir() else path


# ---------------------------------------------------------------------------------------------- reading
def read_records(path: Path) -> list[dict]:
    """The models of a sweep file (``top`` then ``mid`` where the file is split that way)."""
    if not path.is_file():
        raise GroundTruthError(f"NDS file {path} does not exist: expected {EXPECTED}")
    try:
        with path.open("rb") as handle:
            data = json.load(handle)
    except json.JSONDecodeError as error:
        raise NDSFormatError(f"{path} is not readable JSON (line {error.lineno}, column {error.colno}: {error.msg}; "
                             f"truncated download?): expected {EXPECTED}") from None
    except UnicodeDecodeError:
        raise NDSFormatError(f"{path} is not JSON text: expected {EXPECTED}") from None
    if isinstance(data, dict) and "top" in data and "mid" in data:
        data = list(data["top"]) + list(data["mid"])
    if not isinstance(data, list) or not data:
        raise NDSFormatError(f"{path} holds no list of trained models: expected {EXPECTED}")
    return data


def _record_columns(record: Any, where: str) -> tuple[str, dict[str, float], dict[str, list[float]]]:
    """(genotype JSON text, scalars, curves) of one record; one line naming it when a field is missing."""
    try:
        net = record["net"]
        if "genotype" not in net:
            raise NDSFormatError(f"{where} has no net.genotype: not a cell-family sweep (ResNet, ResNeXt and Vanilla "
                                 f"sweeps have no cells): expected {EXPECTED}")
        genotype = json.dumps(net["genotype"], sort_keys=True, separators=(",", ":"))
        curves = {name: [float(v) for v in record.get(name) or ()] for name in CURVES}
        if not curves["test_ep_top1"]:
            raise NDSFormatError(f"{where} has no test_ep_top1 curve (per-epoch test error): expected {EXPECTED}")
        test = curves["test_ep_top1"]
        optim = record.get("optim") or {}
        scalars = {"width": float(net.get("width", -1)), "depth": float(net.get("depth", -1)),
                   "params": float(record.get("params", math.nan)), "flops": float(record.get("flops", math.nan)),
                   "epochs": float(optim.get("max_ep", len(test))), "seed": float(record.get("rng_seed", -1)),
                   "base_lr": float(optim.get("base_lr", math.nan)), "wd": float(optim.get("wd", math.nan)),
                   "test_error": test[-1], "min_test_error": float(record.get("min_test_top1", min(test))),
                   "train_error": curves["train_ep_top1"][-1] if curves["train_ep_top1"] else math.nan}
    except NDSFormatError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise NDSFormatError(f"{where} is not an NDS model record ({type(error).__name__}: {error}): "
                             f"expected {EXPECTED}") from None
    return genotype, scalars, curves


def _padded(rows: list[list[float]]) -> np.ndarray:
    width = max((len(r) for r in rows), default=0)
    out = np.full((len(rows), width), np.nan, dtype=np.float32)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


def convert(path: Path) -> dict[str, np.ndarray]:
    """The columns of a sweep file (one row per record, in file order)."""
    records = read_records(path)
    genotypes: list[str] = []
    scalars: dict[str, list[float]] = {k: [] for k in SCALARS}
    curves: dict[str, list[list[float]]] = {k: [] for k in CURVES}
    for index, record in enumerate(records):
        genotype, values, series = _record_columns(record, f"{path}: record {index}")
        genotypes.append(genotype)
        for k in SCALARS:
            scalars[k].append(values[k])
        for k in CURVES:
            curves[k].append(series[k])
    stat = path.stat()
    columns = {"format": np.array(FORMAT), "source_size": np.array(stat.st_size, dtype=np.int64),
               "source_mtime_ns": np.array(stat.st_mtime_ns, dtype=np.int64),
               "genotype": np.array([g.encode("utf-8") for g in genotypes], dtype="S")}
    columns.update({k: np.array(v, dtype=np.float64) for k, v in scalars.items()})
    columns.update({k: _padded(v) for k, v in curves.items()})
    return columns


def load_columns(path: Path, cache: Optional[Path]) -> dict[str, np.ndarray]:
    """The columns from ``cache`` while it matches ``path``'s size and mtime, else from the JSON (then
    written to ``cache``; a read-only place only costs the next read its speed)."""
    if cache is not None and cache.is_file() and path.is_file():
        try:
            with np.load(cache, allow_pickle=False) as data:
                columns = {k: data[k] for k in data.files}
            stat = path.stat()
            if (int(columns["format"]) == FORMAT and int(columns["source_size"]) == stat.st_size
                    and int(columns["source_mtime_ns"]) == stat.st_mtime_ns):
                return columns
        except Exception:  # noqa: BLE001  a damaged or foreign cache is rebuilt from the source
            pass
    columns = convert(path)
    if cache is not None:
        try:
            atomic_write_bytes(cache, lambda handle: np.savez(handle, **columns))
        except OSError as error:
            if not is_storage_fault(error) and not isinstance(error, PermissionError):
                raise
            notice(f"could not write the NDS cache {cache} ({error.strerror or error}); the JSON is read each time")
    return columns


# ---------------------------------------------------------------------------------------------- mapping
def to_genotype(genotype: dict) -> Genotype:
    """NDS' genotype dictionary as a ``Genotype`` (NDS names the 7 DARTS operations as DARTS does)."""
    try:
        return Genotype.from_pairs([tuple(p) for p in genotype["normal"]], [tuple(p) for p in genotype["reduce"]],
                                   list(genotype["normal_concat"]), list(genotype["reduce_concat"]))
    except (KeyError, TypeError) as error:
        raise ArchitectureError(f"not a DARTS genotype ({type(error).__name__}: {error})") from None


def fit(genotype: dict, space: DartsCNNSpace) -> tuple[Optional[Genotype], Optional[str]]:
    """(the cell as a member of ``space``, None), or (None, why it is not: a short reason, the unit of
    ``left_out``)."""
    for label in CELL_TYPES:
        pairs = genotype.get(label) or []
        ops = sorted({str(p[0]) for p in pairs if isinstance(p, (list, tuple)) and p})
        outside = [op for op in ops if op not in space.cell_operations]
        if len(pairs) != 2 * space.num_nodes:
            return None, f"{len(pairs) // 2} nodes per cell (darts_cnn: {space.num_nodes})"
        if outside:
            known = "" if all(op in CELL_OPERATIONS for op in outside) else " (not a DARTS operation)"
            return None, f"operation {', '.join(outside)}{known}"
        concat = sorted(set(genotype.get(f"{label}_concat") or []))
        if concat != list(range(2, space.num_nodes + 2)):
            return None, "outputs only some nodes (loose ends)"
    try:
        arch = to_genotype(genotype)
        space.check(arch)
    except ArchitectureError as error:
        return None, "a node reads one input twice" if "twice" in str(error) else f"malformed genotype ({error})"
    return arch, None


class NDSBenchmark(TableBenchmark):
    """DARTS-NDS by darts_cnn key (module docstring).

    Args:
        path: an NDS sweep file (``DARTS.json``), or the folder of the NDS archive, where ``sweep``
            picks the file.
        sweep: the file in that folder: ``DARTS`` (default, the 5,000 cells "How to Train Your
            Super-Net" ranks against), ``DARTS_fix-w-d`` (the fixed width/depth subset),
            ``DARTS_lr-wd``, ``DARTS_in``, ``DARTS_lr-wd_in``.
        metric: ``test_error`` (final-epoch top-1 test error, %; default), ``test_accuracy``
            (100 - that), ``min_test_error`` (best epoch's, NDS' ``min_test_top1``), ``train_error``.
        width, depth: keep only the records of this width / depth (the others are counted as
            ``left_out``); with ``DARTS.json`` this selects a fixed-width/depth slice.
        cache: keep a columnar copy of the JSON (read instead of the JSON while the JSON is unchanged).
        cache_path: where (default: ``<file>.npz`` beside the JSON).
        num_nodes: intermediate nodes of the darts_cnn space the keys are made for (DARTS: 4).
    """

    def __init__(self, path: str, sweep: str = "DARTS", metric: str = "test_error", width: Optional[int] = None,
                 depth: Optional[int] = None, cache: bool = True, cache_path: Optional[str] = None,
                 num_nodes: int = 4) -> None:
        if metric not in METRICS:
            raise GroundTruthError(f"benchmark.metric: unknown NDS metric {metric!r}; known: {', '.join(METRICS)}")
        self.path = sweep_path(path, sweep)
        self.source = str(self.path)
        self.metric = metric
        self.column, self.higher_is_better = METRICS[metric]
        self.width, self.depth = width, depth
        self.space = DartsCNNSpace(num_nodes=num_nodes)
        cached = (Path(cache_path) if cache_path else Path(str(self.path) + ".npz")) if cache else None
        started = time.perf_counter()
        self.columns = load_columns(self.path, cached)
        self.load_seconds = time.perf_counter() - started
        self._index()

    # ------------------------------------------------------------------ index
    def _index(self) -> None:
        cols = self.columns
        self.keys_by_record: list[Optional[str]] = []
        self.left_out: Counter[str] = Counter()
        rows: dict[str, list[int]] = {}
        width, depth = cols["width"], cols["depth"]
        for i, text in enumerate(cols["genotype"].tolist()):
            key = None
            if self.width is not None and int(width[i]) != self.width:
                self.left_out[f"width {int(width[i])} (kept: {self.width})"] += 1
            elif self.depth is not None and int(depth[i]) != self.depth:
                self.left_out[f"depth {int(depth[i])} (kept: {self.depth})"] += 1
            else:
                genotype = json.loads(text)
                arch, reason = fit(genotype, self.space) if isinstance(genotype, dict) else (None, "malformed genotype")
                if arch is not None:
                    key = self.space.key(self.space.canonical(arch))
                    rows.setdefault(key, []).append(i)
                else:
                    self.left_out[reason] += 1
            self.keys_by_record.append(key)
        self.rows = rows
        if not rows:
            reasons = "; ".join(f"{n} x {why}" for why, n in self.left_out.most_common())
            raise GroundTruthError(f"no record of {self.path} is a darts_cnn cell ({reasons}): expected {EXPECTED}")
        if self.left_out:
            notice(f"{self.path}: {sum(self.left_out.values())} of {len(self.keys_by_record)} records are not darts_cnn "
                   f"cells and are left out: " + "; ".join(f"{n} x {why}" for why, n in self.left_out.most_common()))
        values = self.columns[self.column]
        sign = (lambda v: 100.0 - v) if self.metric == "test_accuracy" else (lambda v: v)  # noqa: E731
        self._table = {key: float(sign(np.mean(values[idx]))) for key, idx in rows.items()}

    def table(self) -> dict[str, float]:
        return self._table

    @property
    def num_records(self) -> int:
        return len(self.keys_by_record)

    def records(self, key: Any) -> list[dict[str, Any]]:
        """Every record of one cell: width, depth, params, flops, protocol, final/best errors, curves."""
        key = self._key(key)
        if key not in self.rows:
            raise GroundTruthError(f"{key} is not in {self.path} ({len(self.rows)} darts_cnn cells)")
        out = []
        for i in self.rows[key]:
            row: dict[str, Any] = {k: float(self.columns[k][i]) for k in SCALARS}
            for k in ("width", "depth", "epochs", "seed"):
                row[k] = int(row[k])
            for k in CURVES:
                curve = self.columns[k][i]
                row[k] = [float(v) for v in curve[~np.isnan(curve)]]
            row["record"] = int(i)
            out.append(row)
        return out

    def query(self, key: Any) -> float:
        return super().query(self._key(key))

    def _key(self, key: Any) -> str:
        """A key, or a ``Genotype`` turned into its canonical key."""
        return self.space.key(self.space.canonical(key)) if isinstance(key, Genotype) else str(key)

    def check(self, space: Any) -> None:
        """The run's space must make the same keys: a darts_cnn space with this many nodes and all 7 operations."""
        if getattr(space, "name", None) != "darts_cnn":
            raise GroundTruthError(f"{self.source} is DARTS-NDS, keyed by darts_cnn genotypes; space "
                                   f"{getattr(space, 'name', space)!r} has other keys (use darts_cnn)")
        if space.num_nodes != self.space.num_nodes or tuple(space.cell_operations) != tuple(self.space.cell_operations):
            raise GroundTruthError(f"{self.source}: DARTS-NDS cells have {self.space.num_nodes} nodes and the 7 DARTS "
                                   f"operations; this darts_cnn space has {space.num_nodes} nodes and operations "
                                   f"{list(space.cell_operations)} (drop space_options)")

    def summary(self) -> dict[str, Any]:
        """What was read: records, distinct cells, records left out by reason, load time."""
        return {"file": str(self.path), "records": self.num_records, "cells": len(self.rows),
                "mapped_records": sum(len(v) for v in self.rows.values()),
                "left_out": dict(self.left_out.most_common()), "load_seconds": round(self.load_seconds, 3)}

