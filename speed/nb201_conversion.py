"""Conversion time, peak memory and query speed of the NAS-Bench-201 reader on synthetic files in the official format.

    python speed/nb201_conversion.py [num_archs ...] [--dir DIR] [--keep] [--whole]

For each ``num_archs`` (default 500 and 1500) writes a legacy ``torch.save`` file shaped like
``NAS-Bench-201-v1_0-e61699.pth`` (``synthetic.write_pth_streamed``: 12 epochs on cifar10-valid, 200 epochs on
all four data sets with 1-3 seeds, numpy 1 names), converts it in a child process (streamed; ``--whole``
also with ``torch.load(weights_only=True)``) and reports wall time, the child's peak resident memory
(``VmHWM``) beside that of a child that only imports the reader, and queries per second of
``NB201Benchmark``. Extrapolation to the official 15,625 architectures is linear in the file size and is
printed as such. A synthetic ``NATS-tss-v1_0-3ffb9-simple`` folder of ``--nats`` architectures is converted
too. Synthetic files are deleted afterwards unless ``--keep``.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lightning_nas.benchmarks.nasbench201 import NB201Benchmark, synthetic

OFFICIAL_ARCHS = 15_625
ROOT = Path(__file__).resolve().parents[1]


def child(code: str) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of ``python -c code``, alone in its process. The peak is the child's own
    ``VmHWM`` (a new address space from exec; ``ru_maxrss`` of children would start from this process's size)."""
    report = "; print(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1])"
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code + report], check=True, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    return wall, int(out.stdout.split()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("sizes", nargs="*", type=int, default=[500, 1500])
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--whole", action="store_true")
    parser.add_argument("--nats", type=int, default=200, help="architectures of the NATS-tss-simple folder measured")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(dir=args.dir))
    _, base = child("import lightning_nas.benchmarks.nasbench201")
    print(f"baseline child (imports only): peak RSS {base:.0f} MB")
    for n in sorted(args.sizes):
        src = work / f"synthetic-{n}.pth"
        start = time.perf_counter()
        synthetic.write_pth_streamed(src, synthetic.architectures(n), version="v1_0")
        size = src.stat().st_size
        print(f"{n} architectures: {size / 1e6:.1f} MB ({size / n / 1e3:.0f} kB/architecture), written in "
              f"{time.perf_counter() - start:.0f} s")
        modes = [("streamed", True)] + ([("torch.load whole", False)] if args.whole else [])
        for label, stream in modes:
            cache = work / f"synthetic-{n}-{stream}.npz"
            wall, peak = child(f"from lightning_nas.benchmarks.nasbench201 import convert; "
                               f"convert({str(src)!r}, {str(cache)!r}, stream={stream})")
            print(f"  {label}: converted in {wall:.1f} s ({size / 1e6 / wall:.2f} MB/s), peak RSS {peak:.0f} MB "
                  f"({peak - base:+.0f} MB over the baseline child); cache {cache.stat().st_size / 1e6:.2f} MB")
            scale = OFFICIAL_ARCHS / n
            print(f"    extrapolated (linear in size) to {OFFICIAL_ARCHS} architectures ({size * scale / 1e9:.2f} GB): "
                  f"~{wall * scale / 60:.0f} min")
        bench = NB201Benchmark(str(work / f"synthetic-{n}-True.npz"), dataset="cifar100", split="x-test")
        start = time.perf_counter()
        bench.table()
        build = time.perf_counter() - start
        keys = list(bench.table())
        start = time.perf_counter()
        reps = 0
        while time.perf_counter() - start < 1.0:
            for key in keys:
                bench.query(key)
            reps += len(keys)
        qps = reps / (time.perf_counter() - start)
        start = time.perf_counter()
        for key in keys[:200]:
            bench.seed_values(key)
        seed_qps = min(200, len(keys)) / (time.perf_counter() - start)
        print(f"  queries: table built in {build * 1e3:.1f} ms; query() {qps:,.0f}/s; seed_values() {seed_qps:,.0f}/s")
        if not args.keep:
            for path in work.glob(f"synthetic-{n}*"):
                path.unlink()
    if args.nats:
        folder = synthetic.write_nats_folder(work / "NATS-tss-v1_0-3ffb9-simple", synthetic.architectures(args.nats))
        size = sum(p.stat().st_size for p in folder.iterdir())
        wall, peak = child(f"from lightning_nas.benchmarks.nasbench201 import convert; "
                           f"convert({str(folder)!r}, {str(work / 'nats.npz')!r})")
        scale = OFFICIAL_ARCHS / args.nats
        print(f"NATS-tss simple folder, {args.nats} architectures ({size / 1e6:.1f} MB bz2): converted in {wall:.1f} s, "
              f"peak RSS {peak:.0f} MB; extrapolated (linear) to {OFFICIAL_ARCHS}: ~{wall * scale / 60:.1f} min")
        if not args.keep:
            for path in [*folder.iterdir(), folder, work / "nats.npz"]:
                path.unlink() if path.is_file() else path.rmdir()
    if not args.keep:
        work.rmdir()


if __name__ == "__main__":
    main()
