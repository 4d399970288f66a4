"""Conversion speed and cache size of the NAS-Bench-101 reader on a synthetic file in the official format.

    python speed/nb101_conversion.py [num_cells] [--no-verify]

Writes ``num_cells`` x 3 repeats of 108-epoch records (like ``nasbench_only108.tfrecord``, whose
423,624 cells give 1,270,872 records), converts them to the .npz cache, and extrapolates to the
official files (the full file has 4 budgets: 5,083,488 records).
"""
from __future__ import annotations

import hashlib
import random
import sys
import tempfile
import time
from pathlib import Path

from lightning_nas.benchmarks.nasbench101 import NB101Benchmark, convert, encode_row, write_record

OPS = ("conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3")


def synthetic(path: Path, num_cells: int, seed: int = 0) -> int:
    rng = random.Random(seed)
    with open(path, "wb") as f:
        for c in range(num_cells):
            h = hashlib.md5(str(c).encode()).hexdigest()
            adjacency = "".join(str(int(v > u and rng.random() < 0.3)) for u in range(7) for v in range(7))
            ops = ",".join(["input"] + [rng.choice(OPS) for _ in range(5)] + ["output"])
            params = rng.randrange(200_000, 50_000_000)
            for _ in range(3):
                acc = rng.random()
                write_record(f, encode_row(h, 108, adjacency, ops, params, (rng.random() * 1000, acc, acc, acc),
                                           (rng.random() * 2000, acc, acc, acc), total_time=rng.random() * 2000))
    return num_cells * 3


def main() -> None:
    num_cells = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 2000
    verify = "--no-verify" not in sys.argv
    with tempfile.TemporaryDirectory() as tmp:
        src, cache = Path(tmp) / "synthetic.tfrecord", Path(tmp) / "synthetic.npz"
        records = synthetic(src, num_cells)
        size = src.stat().st_size
        start = time.perf_counter()
        convert(src, cache, chunk=20_000, verify=verify)
        elapsed = time.perf_counter() - start
        start = time.perf_counter()
        bench = NB101Benchmark(cache)
        len(bench)
        load = time.perf_counter() - start
        per_record = elapsed / records
        print(f"{records} records ({size / 1e6:.1f} MB, {size / records:.0f} B/record), CRC check {'on' if verify else 'off'}: "
              f"converted in {elapsed:.1f} s = {records / elapsed:.0f} records/s, {size / 1e6 / elapsed:.2f} MB/s; "
              f"cache {cache.stat().st_size / 1e6:.2f} MB ({cache.stat().st_size / records:.0f} B/record); load+table {load:.2f} s")
        for name, n in (("nasbench_only108 (1,270,872 records)", 1_270_872), ("nasbench_full (5,083,488 records)", 5_083_488)):
            print(f"  extrapolated to {name}: {per_record * n / 60:.1f} min, cache ~{cache.stat().st_size / records * n / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
