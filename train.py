"""Train a super-net (or any strategy) from a recipe.

    python train.py --recipe recipes/nb201_spos.yaml [--key.path value ...]
    python train.py --resume RUN_DIR          # continue a killed run, bit-identically on CPU
"""
from __future__ import annotations

import os
import sys

from lightning_nas.app import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], show_traceback=bool(os.environ.get("LIGHTNING_NAS_TRACEBACK"))))
