"""Shared test set-up: offline W&B, one thread, the repository root importable, tiny recipes."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
torch.set_num_threads(1)

TINY_RECIPE = ROOT / "tests" / "recipes" / "tiny.yaml"
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture
def tiny_recipe() -> Path:
    """An NB201 SPOS recipe on 8x8 digits that trains one epoch in a few seconds."""
    return TINY_RECIPE


@pytest.fixture
def nb201_table() -> Path:
    """The real NAS-Bench-201 ground truth, when ../shared/data is present (never required)."""
    path = SHARED_DATA / "nb201" / "nb201_test_acc_200ep.csv"
    if not path.is_file():
        pytest.skip(f"{path} not available")
    return path


def run_train(args: list[str], cwd: Path) -> int:
    """Run train.py's main in-process (fast; no interpreter start-up)."""
    from lightning_nas.app import main

    old = Path.cwd()
    os.chdir(cwd)
    try:
        return main([str(a) for a in args])
    finally:
        os.chdir(old)
