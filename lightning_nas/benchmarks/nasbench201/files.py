"""Reading the official NAS-Bench-201 and NATS-Bench (topology) files without their package, and safely.

- ``NAS-Bench-201-v1_0-e61699.pth`` / ``NAS-Bench-201-v1_1-096897.pth``: one ``torch.save``-d dictionary
  ``{"meta_archs": [15,625 strings], "arch2infos": {index: {"less": record, "full": record}},
  "evaluated_indexes": ..., "total_archs": 15625}``; ``less`` is the 12-epoch budget, ``full`` the
  200-epoch one (``nas_201_api.NASBench201API.__init__``). The record dictionaries are described in
  ``records``.
- ``NATS-tss-v1_0-3ffb9-simple/``: ``meta.pickle.pbz2`` (the same dictionary with ``arch2infos: None``)
  and one ``NNNNNN.pickle.pbz2`` per architecture (bz2-compressed pickle of ``{"12": record, "200":
  record}``; ``.pickle`` uncompressed is read too, as ``nats_bench.api_utils.pickle_load`` does).
- ``NATS-tss-v1_0-3ffb9.pickle.pbz2``: the whole NATS-Bench dictionary in one bz2-compressed pickle
  (``arch2infos``: index -> ``{"12": record, "200": record}``), streamed like a ``.pth``.

Both are pickles: a tampered download would run code under ``pickle.load`` or
``torch.load(weights_only=False)``. Here every global a file names must be on an allow-list (numpy
scalars and arrays under numpy 1's module names, plain containers; ``lightning_nas.safe_pickle``);
anything else is refused in one line naming the file and the global, before it is called.

The v1.0 file is about 2 GB of small Python objects; unpickled whole it needs several times that in
memory. The default reader therefore streams it (``safe_pickle.StreamingUnpickler``): each
architecture's ``{"less", "full"}`` dictionary is reduced to its rows as soon as it is complete, emptied,
and its memo entries dropped, so memory stays that of one architecture plus the rows. ``stream=False``
reads it with ``torch.load(weights_only=True)`` and the same allow-list instead (whole file in memory).
"""
from __future__ import annotations

import bz2
import contextlib
import re
import struct
import zipfile
from pathlib import Path
from typing import IO, Any, Callable, Iterator

import numpy as np

from lightning_nas import safe_pickle
from lightning_nas.benchmarks.nasbench201.records import arch_rows, is_arch_record
from lightning_nas.errors import DatasetError, GroundTruthError

Row = tuple  # (architecture string, data set, seed, budget, metrics)

#: torch.save's legacy (non-zip) files begin with this number, pickled (torch/serialization.py)
TORCH_MAGIC = 0x1950A86A20F9469CFC6C
EXPECTED = ("an official NAS-Bench-201 file (NAS-Bench-201-v1_0-e61699.pth or NAS-Bench-201-v1_1-096897.pth), "
            "NATS-Bench's topology file NATS-tss-v1_0-3ffb9.pickle.pbz2 or its folder NATS-tss-v1_0-3ffb9-simple/ "
            "(meta.pickle.pbz2 and one NNNNNN.pickle.pbz2 per architecture)")
ALLOWED = safe_pickle.NUMPY_GLOBALS | safe_pickle.CONTAINER_GLOBALS
ARCH_FILE = re.compile(r"^(\d{6})\.pickle(\.pbz2)?$")


def _no_tensor(*args: Any, **kwargs: Any) -> None:
    """Stands in for torch's tensor rebuilders: the benchmark never needs stored weights."""
    return None


#: torch names a ``.pth`` holding a tensor uses (rebuilders; storage types inside persistent ids); streamed, they
#: build nothing: the benchmark never needs stored weights (the v1.x files hold none: ``net_state_dict`` is None)
TENSOR_STANDINS = {name: _no_tensor for name in (
    "torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter",
    "torch.storage.UntypedStorage", *(f"torch.{kind}Storage" for kind in (
        "Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte", "Bool")))}


def _keep(value: Any) -> bool:
    """Memo entries kept after an architecture is consumed: what later records may refer back to (field
    and data set names, architecture strings, numpy dtypes and the rebuild functions). What belongs to one
    architecture is dropped: its containers, per-epoch keys (``x-valid@12``), numpy scalars and their bytes."""
    if isinstance(value, (dict, list, tuple, set, np.generic, float, bytes, bytearray)):
        return False
    return not (isinstance(value, str) and "@" in value)


class NB201Unpickler(safe_pickle.StreamingUnpickler):
    """Streams a NAS-Bench-201 ``.pth`` (or NATS-Bench's single file): every complete dictionary of architecture
    records (``{"less": record, "full": record}``; NATS: ``{"12": ..., "200": ...}``) goes to ``sink`` as rows and
    is emptied."""

    def __init__(self, file: IO[bytes], *, sink: Callable[[Row], None], **kwargs: Any) -> None:
        super().__init__(file, substitutes=TENSOR_STANDINS, **kwargs)
        self.sink = sink
        self.architectures = 0

    def filled(self, mapping: dict) -> None:
        records = list(mapping.values())
        if not records or not all(type(v) is dict and is_arch_record(v) for v in records):
            return  # not an architecture's {"less", "full"} (NATS: {"12", "200"}) dictionary
        for record in records:
            for row in arch_rows(record):
                self.sink(row)
        self.architectures += 1
        start = self.memo_index(mapping)
        mapping.clear()
        if start is not None:
            self.forget_since(start, _keep)


@contextlib.contextmanager
def _torch_pickle(path: Path) -> Iterator[IO[bytes]]:
    """The stream of the main pickle in a ``torch.save`` file: ``data.pkl`` of a zip file (torch >= 1.6), or what
    follows the magic number, protocol version and system information of a legacy file."""
    if zipfile.is_zipfile(path):
        try:
            archive = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as error:
            raise DatasetError(f"{path} is not a readable torch.save file ({error})") from None
        with archive:
            names = [n for n in archive.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
            if not names:
                raise GroundTruthError(f"{path} is a zip file without data.pkl, not a torch.save file: expected {EXPECTED}")
            with archive.open(names[0]) as handle:
                yield handle
        return
    with path.open("rb") as handle:
        what = "torch.save file"
        magic = safe_pickle.load_stream(handle, (), source=str(path), what=what)
        if magic != TORCH_MAGIC:
            raise GroundTruthError(f"{path} is not a torch.save file (no torch magic number): expected {EXPECTED}")
        safe_pickle.load_stream(handle, (), source=str(path), what=what)  # protocol version
        safe_pickle.load_stream(handle, (), source=str(path), what=what)  # system information
        yield handle


@contextlib.contextmanager
def _bz2_stream(path: Path) -> Iterator[IO[bytes]]:
    """NATS-Bench's single-file form (``NATS-tss-v1_0-3ffb9.pickle.pbz2``): one bz2-compressed pickle."""
    with bz2.open(path, "rb") as handle:
        yield handle


def _check_top(path: Path, top: Any) -> dict:
    if not isinstance(top, dict) or "arch2infos" not in top:
        raise GroundTruthError(f"{path} holds no NAS-Bench-201 dictionary (no arch2infos): expected {EXPECTED}")
    if top["arch2infos"] is None:
        raise GroundTruthError(f"{path} is a NATS-Bench meta file (arch2infos: None): pass its folder instead")
    return top


def read_pth(path: Path, sink: Callable[[Row], None], stream: bool = True) -> int:
    """Send every row of a NAS-Bench-201 ``.pth`` to ``sink``; the number of architectures read."""
    if not stream:
        return _read_pth_whole(path, sink)
    opened = _bz2_stream(path) if path.suffix == ".pbz2" else _torch_pickle(path)
    with opened as handle:
        unpickler: list[NB201Unpickler] = []

        class _Bound(NB201Unpickler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, sink=sink, **kwargs)
                unpickler.append(self)

        top = safe_pickle.load_stream(handle, ALLOWED, source=str(path), what="NAS-Bench-201 .pth file",
                                      unpickler=_Bound)
    _check_top(path, top)
    return unpickler[0].architectures


def _torch_safe_globals() -> list:
    """The allow-list for ``torch.load(weights_only=True)``: numpy's scalar/array rebuilders under numpy 1's
    and numpy 2's names (torch compares the names a file writes)."""
    from numpy._core import multiarray

    pairs = [(multiarray.scalar, "scalar"), (multiarray._reconstruct, "_reconstruct")]
    globals_: list = [np.dtype, np.ndarray]
    for function, name in pairs:
        for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            globals_.append((function, f"{module}.{name}"))
    for dtype in (np.dtypes.Float64DType, np.dtypes.Float32DType, np.dtypes.Int64DType):
        globals_.append(dtype)
    return globals_


def _read_pth_whole(path: Path, sink: Callable[[Row], None]) -> int:
    import pickle

    import torch

    if path.suffix == ".pbz2":  # NATS-Bench's single file: a plain pickle, read whole by the C unpickler
        return _sink_all(_check_top(path, _load_small(path, "NATS-Bench file")), sink)
    try:
        with torch.serialization.safe_globals(_torch_safe_globals()):
            top = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        first = str(error).strip().splitlines()
        unsupported = [line for line in first if "Unsupported global" in line or "GLOBAL" in line]
        raise safe_pickle.UnsafePickleError(
            f"{path}: refused to load: {(unsupported or first or ['?'])[0].strip()} (not in the NAS-Bench-201 "
            "allow-list); the file may be tampered with") from None
    except (RuntimeError, EOFError, OSError, ValueError, struct.error, KeyError, TypeError) as error:
        raise DatasetError(f"{path} is not a readable torch.save file ({type(error).__name__}: "
                           f"{str(error).splitlines()[0] if str(error) else ''})") from None
    return _sink_all(_check_top(path, top), sink)


def _sink_all(top: dict, sink: Callable[[Row], None]) -> int:
    count = 0
    for value in top["arch2infos"].values():
        for record in (value or {}).values():
            if isinstance(record, dict) and is_arch_record(record):
                for row in arch_rows(record):
                    sink(row)
        count += 1
    return count


def _open_pickle(path: Path) -> IO[bytes]:
    return bz2.open(path, "rb") if path.suffix == ".pbz2" else path.open("rb")


def _load_small(path: Path, what: str) -> Any:
    with _open_pickle(path) as handle:
        return safe_pickle.load_stream(handle, ALLOWED, source=str(path), what=what)


def read_nats_folder(folder: Path, sink: Callable[[Row], None]) -> int:
    """Send every row of a NATS-Bench ``*-simple`` folder to ``sink``; the number of architectures read."""
    metas = [folder / name for name in ("meta.pickle.pbz2", "meta.pickle") if (folder / name).is_file()]
    if not metas:
        raise GroundTruthError(f"{folder} has no meta.pickle.pbz2: expected {EXPECTED}")
    meta = _load_small(metas[0], "NATS-Bench meta file")
    if not isinstance(meta, dict) or not isinstance(meta.get("meta_archs"), list):
        raise GroundTruthError(f"{metas[0]} holds no meta_archs list: expected {EXPECTED}")
    archs = meta["meta_archs"]
    count = 0
    for path in sorted(folder.iterdir()):
        match = ARCH_FILE.match(path.name)
        if not match:
            continue
        index = int(match.group(1))
        data = _load_small(path, "NATS-Bench architecture file")
        records = [v for v in data.values() if isinstance(v, dict) and is_arch_record(v)] if isinstance(data, dict) else []
        if not records:
            raise GroundTruthError(f"{path} holds no architecture record (all_results, dataset_seed): expected {EXPECTED}")
        for record in records:
            if index < len(archs) and str(record["arch_str"]) != archs[index]:
                raise GroundTruthError(f"{path}: architecture {record['arch_str']!r} is not meta_archs[{index}] "
                                       f"{archs[index]!r} of {metas[0].name}")
            for row in arch_rows(record):
                sink(row)
        count += 1
    if count == 0:
        raise GroundTruthError(f"{folder} holds no NNNNNN.pickle.pbz2 architecture file: expected {EXPECTED}")
    return count


def read_rows(path: Path, sink: Callable[[Row], None], stream: bool = True) -> int:
    """Rows of an official file or folder, whichever ``path`` is."""
    if path.is_dir():
        return read_nats_folder(path, sink)
    if not path.is_file():
        raise GroundTruthError(f"{path} does not exist: expected {EXPECTED}")
    if path.stat().st_size == 0:
        raise GroundTruthError(f"{path} is empty (0 bytes, a failed download?): expected {EXPECTED}")
    return read_pth(path, sink, stream=stream)
