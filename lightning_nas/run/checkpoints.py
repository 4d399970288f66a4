"""``RUN_DIR/checkpoints``: the checkpoints a run writes, and the one ``--resume`` continues from.

A run keeps two checkpoints, ``last.ckpt`` (the newest) and ``last.prev.ckpt`` (the one before), so
that a checkpoint damaged by a kill or a full disk is set aside and the resume falls back to the
earlier one; a stop signal saves one at the end of the current step. A checkpoint that cannot serve
(missing, corrupt, or of another network) is one ``CheckpointError`` line, not a traceback.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning import Trainer
from pytorch_lightning.callbacks import ModelCheckpoint

from lightning_nas import signals
from lightning_nas.errors import RecipeError
from lightning_nas.run.errors import first_line

LAST, PREVIOUS = "last.ckpt", "last.prev.ckpt"


class CheckpointError(RecipeError):
    """A checkpoint that cannot be resumed from (missing, truncated, corrupt, or of another network)."""


def last_checkpoint(run_dir: str | Path) -> Path:
    """``RUN_DIR/checkpoints/last.ckpt``, the newest checkpoint of a run (it may not exist)."""
    return Path(run_dir) / "checkpoints" / LAST


def read_checkpoint(path: Path) -> tuple[dict | None, str]:
    """(the checkpoint, "") or (None, why it cannot be read). Memory-mapped: cheap for a check."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True), ""
    except FileNotFoundError:
        return None, "missing"
    except Exception as error:  # a truncated zip, a bad pickle, a wrong format: all mean "unusable"
        return None, first_line(error)[:160]


def choose_checkpoint(run_dir: Path, set_aside: bool = True) -> Path:
    """The newest readable ``last*.ckpt`` of a run. A corrupt ``last.ckpt`` is set aside (renamed
    ``last.ckpt.corrupt``) with one warning when an earlier checkpoint (``last.prev.ckpt``) exists;
    otherwise one error line names it."""
    folder = run_dir / "checkpoints"
    last = folder / LAST
    candidates = sorted(folder.glob("last*.ckpt")) if folder.is_dir() else []
    if not candidates:
        raise CheckpointError(f"--resume {run_dir}: no checkpoint {last} to resume from")
    readable: list[tuple[int, Path]] = []
    broken: list[tuple[Path, str]] = []
    for path in candidates:
        checkpoint, why = read_checkpoint(path)
        step = checkpoint.get("global_step") if isinstance(checkpoint, dict) else None
        if isinstance(step, int):
            readable.append((step, path))
        else:
            broken.append((path, why or "not a Lightning checkpoint"))
    if not readable:
        path, why = broken[0]
        raise CheckpointError(f"--resume {run_dir}: checkpoint {path} is truncated or corrupt ({why}) and there is "
                              f"no earlier checkpoint ({folder / PREVIOUS}) to fall back to; start again with "
                              "another --run_dir")
    step, chosen = max(readable, key=lambda item: (item[0], item[1].name == LAST))
    for path, why in broken:
        if path == last and set_aside:  # set aside, so that the next save does not rotate it into last.prev.ckpt
            last.replace(last.with_name(LAST + ".corrupt"))
        print(f"[lightning_nas] warning: checkpoint {path} is truncated or corrupt ({why}); resuming from "
              f"{chosen} (step {step})", file=sys.stderr, flush=True)
    return chosen


def check_checkpoint_fits(checkpoint: Path, model: Any, run_dir: Path) -> None:
    """One line instead of Lightning's size-mismatch traceback when the recipe changed the network."""
    saved, _ = read_checkpoint(checkpoint)
    state = (saved or {}).get("state_dict") if isinstance(saved, dict) else None
    if not isinstance(state, dict):
        return
    own = model.state_dict()
    differ = [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in state.items()
              if k in own and hasattr(v, "shape") and tuple(v.shape) != tuple(own[k].shape)]
    if differ:
        key, a, b = differ[0]
        raise CheckpointError(f"--resume {run_dir}: the options change the network its checkpoint holds "
                              f"({len(differ)} tensors differ, e.g. {key} {list(a)} -> {list(b)}); resume with the "
                              "run's own recipe, or start a new run with another --run_dir")


class RunCheckpoint(ModelCheckpoint):
    """``checkpoints/last.ckpt`` is always the newest checkpoint (also after the run directory moved:
    no ``last-v1.ckpt``), the one before it stays as ``last.prev.ckpt`` (the fallback when the newest
    is damaged), and a pending SIGTERM/SIGINT saves one at the end of the current step and stops the
    run through Lightning's own SIGTERM exit (after the step's metrics are logged)."""

    def __init__(self, dirpath: str, every_n_train_steps: int) -> None:
        super().__init__(dirpath=dirpath, save_last=True, save_top_k=0, every_n_train_steps=every_n_train_steps,
                         enable_version_counter=False)
        self.stopped_at: int | None = None

    def _save_checkpoint(self, trainer: Trainer, filepath: str) -> None:
        path = Path(filepath)
        if trainer.is_global_zero and path.name == LAST and path.is_file():
            keep = path.with_name(f".{os.getpid()}.{PREVIOUS}")
            try:
                os.link(path, keep)  # the old file stays in place as last.ckpt until the new one replaces it
            except OSError:
                import shutil

                shutil.copyfile(path, keep)
            os.replace(keep, path.with_name(PREVIOUS))
        super()._save_checkpoint(trainer, filepath)  # atomic (TorchCheckpointIO -> temporary file + rename)

    def on_train_batch_end(self, trainer: Trainer, *args: Any, **kwargs: Any) -> None:
        super().on_train_batch_end(trainer, *args, **kwargs)
        if signals.pending() is None or trainer.world_size > 1 or self.stopped_at is not None:
            return  # (DDP: Lightning's own SIGTERM handling stops every rank; the last periodic checkpoint counts)
        if self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        self.stopped_at = trainer.global_step
        trainer._signal_connector.received_sigterm = True  # Lightning stops after logging this step
