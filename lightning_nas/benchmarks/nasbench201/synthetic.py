"""Files in the official NAS-Bench-201 / NATS-Bench formats with made-up numbers (tests, speed measurements).

The structure follows what the official files hold (``records``; the trials of NATS-Bench's sample
architectures): per trial, per-epoch training accuracy / loss / time, per-epoch accuracy / loss / time
of the first evaluation split and the last epoch of the others, ``params`` as a numpy scalar (pickled
under numpy 1's ``numpy.core.multiarray.scalar``, as the official files are), ``latency`` a list of them.
Values come from ``random.Random(seed)``: the same arguments write the same file.
"""
from __future__ import annotations

import bz2
import io
import pickle
import random
import sys
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from lightning_nas.benchmarks.nasbench201.records import SPLITS
from lightning_nas.spaces.nb201 import NB201Architecture

#: the seeds of the official files: 200 epochs 777/888/999; 12 epochs 111 (and 777 on cifar10-valid, v1.1)
SEEDS_200 = (777, 888, 999)


def trial(arch: str, dataset: str, seed: int, epochs: int, rng: random.Random, full_evals: bool = False) -> dict:
    """One ``ResultsCount`` dictionary; ``full_evals`` records every split at every epoch (else the first split
    at every epoch and the others at the last, as NATS-Bench's 200-epoch trials do)."""
    names = [s for s in SPLITS[dataset] if s != "train"]
    final = rng.uniform(10, 95)
    curve = [final * (1 - 0.9 ** (e + 1)) for e in range(epochs)]
    per_epoch_time = rng.uniform(5, 80)
    evals: dict[str, float] = {}
    losses: dict[str, float] = {}
    times: dict[str, float] = {}
    for n, name in enumerate(names):
        for e in range(epochs) if (n == 0 or full_evals) else [epochs - 1]:
            key = f"{name}@{e}"
            evals[key] = curve[e] + rng.uniform(-1, 1)
            losses[key] = rng.uniform(0.1, 3)
            times[key] = per_epoch_time / 10
    return {"name": dataset, "train_acc1es": {e: curve[e] + rng.uniform(0, 3) for e in range(epochs)},
            "train_acc5es": None, "train_losses": {e: rng.uniform(0.01, 3) for e in range(epochs)},
            "train_times": dict.fromkeys(range(epochs), per_epoch_time),
            "arch_config": {"channel": 16, "num_cells": 5, "arch_str": arch, "class_num": 10},
            "params": np.float64(rng.uniform(0.07, 1.5)), "flop": rng.uniform(7, 220), "seed": f"{seed:04d}",
            "epochs": epochs, "latency": [np.float64(rng.uniform(0.005, 0.03))], "eval_names": names,
            "eval_acc1es": evals, "eval_times": times, "eval_losses": losses, "net_state_dict": None}


def arch_record(index: int, arch: str, epochs: int, dataset_seeds: dict[str, Sequence[int]], rng: random.Random,
                full_evals: bool = False) -> dict:
    """One ``ArchResults`` dictionary: every (data set, seed) trained for ``epochs``."""
    results = {(d, s): trial(arch, d, s, epochs, rng, full_evals) for d, seeds in dataset_seeds.items() for s in seeds}
    return {"arch_index": index, "arch_str": arch, "all_results": results,
            "dataset_seed": {d: list(seeds) for d, seeds in dataset_seeds.items()}, "clear_net_done": True}


def architectures(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [str(NB201Architecture.from_index(i)) for i in sorted(rng.sample(range(5 ** 6), count))]


def arch_infos(archs: Sequence[str], version: str = "v1_0", seed: int = 0,
               full_evals: bool = False) -> Iterator[tuple[int, dict]]:
    """(index, {"less": record, "full": record}) per architecture, made one at a time: v1_0 trains 12 epochs on
    cifar10-valid only; v1_1 on every data set (cifar10-valid with two seeds). 200 epochs: 1 to 3 of the seeds
    777/888/999 per architecture (NAS-Bench-201's README: some architectures were trained once, some 2 or 3 times)."""
    rng = random.Random(seed)
    for index, arch in enumerate(archs):
        seeds = SEEDS_200[:rng.randint(1, 3)]
        less = {"cifar10-valid": (111,)} if version == "v1_0" else {
            "cifar10-valid": (111, 777), "cifar10": (111,), "cifar100": (111,), "ImageNet16-120": (111,)}
        yield index, {"less": arch_record(index, arch, 12, less, rng, full_evals),
                      "full": arch_record(index, arch, 200, dict.fromkeys(SPLITS, seeds), rng, full_evals)}


def benchmark_dict(archs: Sequence[str], version: str = "v1_0", seed: int = 0, full_evals: bool = False) -> dict:
    """The whole dictionary of a NAS-Bench-201 ``.pth`` (small files; ``write_pth_streamed`` for big ones)."""
    infos = dict(arch_infos(archs, version, seed, full_evals))
    return {"meta_archs": list(archs), "arch2infos": infos, "evaluated_indexes": set(infos), "total_archs": len(archs)}


class _Lazy:
    """Stands for ``arch2infos`` while writing: its items are made as they are pickled."""

    def __init__(self, items: Iterator[tuple[int, dict]]) -> None:
        self.items = items


class _StreamingPickler(pickle._Pickler):  # type: ignore[name-defined]  # the pure-Python pickler
    """Pickles ``arch2infos`` one architecture at a time and forgets each once written (same opcodes as
    ``torch.save``'s protocol 2, monotonic memo indices), so a file of any size is written in little memory."""

    dispatch = dict(pickle._Pickler.dispatch)  # type: ignore[attr-defined]

    def __init__(self, file: Any, flush: Any) -> None:
        super().__init__(file, protocol=2)
        self.flush = flush
        self.next_index = 0
        self.recent: list[int] = []

    def memoize(self, obj: Any) -> None:
        index = self.next_index
        self.next_index += 1
        self.write(self.put(index))
        self.memo[id(obj)] = index, obj
        self.recent.append(id(obj))

    def save_lazy(self, obj: _Lazy) -> None:
        from lightning_nas.benchmarks.nasbench201.files import _keep

        self.write(pickle.EMPTY_DICT)
        self.memoize(obj)
        done = False
        while not done:
            self.write(pickle.MARK)
            for _ in range(self._BATCHSIZE):
                item = next(obj.items, None)
                if item is None:
                    done = True
                    break
                self.recent = []
                self.save(item[0])
                self.save(item[1])
                for key in self.recent:  # forget what belongs to this architecture (files._keep: what readers keep)
                    if not _keep(self.memo[key][1]):
                        del self.memo[key]
                self.flush()
            self.write(pickle.SETITEMS)

    dispatch[_Lazy] = save_lazy


def _flush(buffer: Any, handle: Any) -> None:
    handle.write(numpy1_names(buffer.getvalue()))
    buffer.seek(0)
    buffer.truncate()


def write_pth_streamed(path: Path, archs: Sequence[str], version: str = "v1_0", seed: int = 0,
                       full_evals: bool = False) -> Path:
    """A legacy-format ``torch.save`` file of ``benchmark_dict(...)``, written one architecture at a time (numpy 1
    names): how ``speed/nb201_conversion.py`` writes a file of the official size without holding it."""
    import torch.serialization as ts

    sys_info = {"protocol_version": ts.PROTOCOL_VERSION, "little_endian": sys.byteorder == "little",
                "type_sizes": {"short": ts.SHORT_SIZE, "int": ts.INT_SIZE, "long": ts.LONG_SIZE}}
    top = {"meta_archs": list(archs), "arch2infos": _Lazy(arch_infos(archs, version, seed, full_evals)),
           "evaluated_indexes": set(range(len(archs))), "total_archs": len(archs)}

    with path.open("wb") as handle:
        for head in (ts.MAGIC_NUMBER, ts.PROTOCOL_VERSION, sys_info):
            pickle.dump(head, handle, protocol=2)
        buffer = io.BytesIO()
        pickler = _StreamingPickler(buffer, flush=lambda: _flush(buffer, handle))
        pickler.dump(top)
        _flush(buffer, handle)
        pickle.dump([], handle, protocol=2)  # the storage keys (none)
    return path


def numpy1_names(data: bytes) -> bytes:
    """Pickled bytes with numpy 2's module names written as numpy 1 wrote them (what the official files hold)."""
    return data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


def write_pth(path: Path, obj: dict[str, Any], zip_format: bool = False) -> Path:
    """``torch.save`` ``obj`` (legacy format by default, as the 2019/2020 files are), numpy 1 names."""
    import io

    import torch

    if zip_format:
        torch.save(obj, path)
        return path
    buffer = io.BytesIO()
    torch.save(obj, buffer, _use_new_zipfile_serialization=False)
    path.write_bytes(numpy1_names(buffer.getvalue()))
    return path


def write_nats_folder(folder: Path, archs: Sequence[str], seed: int = 0, full_evals: bool = False) -> Path:
    """A ``NATS-tss-v1_0-3ffb9-simple`` folder: ``meta.pickle.pbz2`` and one ``NNNNNN.pickle.pbz2`` per architecture."""
    folder.mkdir(parents=True, exist_ok=True)
    source = benchmark_dict(archs, "v1_1", seed, full_evals)
    meta = {"meta_archs": list(archs), "total_archs": len(archs), "arch2infos": None, "evaluated_indexes": set()}
    (folder / "meta.pickle.pbz2").write_bytes(bz2.compress(pickle.dumps(meta, protocol=4)))
    for index, info in source["arch2infos"].items():
        data = {"12": info["less"], "200": info["full"]}
        (folder / f"{index:06d}.pickle.pbz2").write_bytes(bz2.compress(_numpy1_protocol4(data)))
    return folder


def _numpy1_protocol4(obj: Any) -> bytes:
    """``obj`` pickled with protocol 4 (as ``nats_bench.api_utils.pickle_save`` does) naming numpy 1's module: the
    pickle is written without frames (optional for readers) so that the shorter name can replace the longer one
    together with its length byte (``SHORT_BINUNICODE``)."""
    buffer = io.BytesIO()
    pickler = pickle._Pickler(buffer, protocol=4)  # type: ignore[attr-defined]
    pickler.framer.start_framing = lambda: None  # no FRAME opcodes
    pickler.dump(obj)
    old, new = b"numpy._core.multiarray", b"numpy.core.multiarray"
    return buffer.getvalue().replace(pickle.SHORT_BINUNICODE + bytes([len(old)]) + old,
                                     pickle.SHORT_BINUNICODE + bytes([len(new)]) + new)


def write_nats_file(path: Path, archs: Sequence[str], seed: int = 0, full_evals: bool = False) -> Path:
    """NATS-Bench's single file (``NATS-tss-v1_0-3ffb9.pickle.pbz2``): the whole dictionary, records under "12"/"200"."""
    source = benchmark_dict(archs, "v1_1", seed, full_evals)
    infos = {i: {"12": info["less"], "200": info["full"]} for i, info in source["arch2infos"].items()}
    data = {"meta_archs": list(archs), "total_archs": len(archs), "arch2infos": infos, "evaluated_indexes": set(infos)}
    path.write_bytes(bz2.compress(_numpy1_protocol4(data)))
    return path
