"""Time and count the unique NAS-Bench-101 cells (one per official graph hash) for n = 4..7 vertices.

    python speed/nb101_enumeration.py [max_n] [--fast]

``--fast`` deduplicates with the tuple-hash refinement (same partition as the MD5 hash) and then
computes the official MD5 hash only for the unique cells. Published: 423,624 cells for n = 7.
"""
from __future__ import annotations

import sys
import time

from lightning_nas.spaces.nb101 import enumerate_unique_cells


def main() -> None:
    max_n = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 6
    fast = "--fast" in sys.argv
    for n in range(4, max_n + 1):
        start = time.perf_counter()
        cells = list(enumerate_unique_cells(n, official_hash=not fast))
        elapsed = time.perf_counter() - start
        extra = ""
        if fast:
            start = time.perf_counter()
            hashes = {c.hash for c in cells}
            extra = f", official hashes of the unique cells: {len(hashes)} distinct in {time.perf_counter() - start:.1f} s"
        print(f"n={n}: {len(cells)} unique cells in {elapsed:.1f} s ({'fast key' if fast else 'official MD5 hash'}){extra}",
              flush=True)


if __name__ == "__main__":
    main()
