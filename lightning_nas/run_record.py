"""What a run directory records so that the run can be reproduced: seed, command, versions, commit."""
from __future__ import annotations

import datetime
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from lightning_nas.io import atomic_write_json

PACKAGES = ("torch", "pytorch-lightning", "torchmetrics", "jsonargparse", "numpy", "scipy", "scikit-learn", "wandb")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_state(path: Path | None = None) -> dict[str, Any]:
    """The project's commit and whether the work tree differs from it (None outside git)."""
    where = str(path or Path(__file__).resolve().parent.parent)
    try:
        commit = subprocess.run(["git", "-C", where, "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", where, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip() != ""
        return {"commit": commit, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def write_run_record(run_dir: Path, seed: int, argv: list[str], **extra: Any) -> Path:
    record = {
        "seed": seed,
        "command": [Path(sys.argv[0]).name, *argv],
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": package_versions(),
        "git": git_state(),
        "platform": platform.platform(),
        # CPU results are bit-identical only with the same intra-op thread count (train.py --reproduce uses it)
        "torch_threads": torch.get_num_threads(),
        **extra,
    }
    return atomic_write_json(run_dir / "run.json", record)
