"""``RUN_DIR/checkpoints``: the checkpoints a run writes, and the one ``--resume`` continues from.

A run keeps two checkpoints, ``last.ckpt`` (the newest) and ``last.prev.ckpt`` (the one before), so
that a checkpoint damaged by a kill or a full disk is set aside and the resume falls back to the
earlier one; a stop signal saves one at the end of the current step. A checkpoint that cannot serve
(missing, corrupt, or of another network) is one ``CheckpointError`` line, not a traceback.
"""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any, Iterator

import torch
from pytorch_lightning import Trainer
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.plugins.io import TorchCheckpointIO
from pytorch_lightning.utilities.exceptions import SIGTERMException

from lightning_nas import signals
from lightning_nas.errors import RecipeError
from lightning_nas.io import StagedFile, StorageError, is_storage_fault, remedy, stage, storage_error, temporary_pattern
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


def newest_step(folder: Path) -> int | None:
    """The global step of the newest readable ``last*.ckpt`` in ``folder`` (None if there is none)."""
    steps = [checkpoint.get("global_step") for checkpoint, _ in map(read_checkpoint, sorted(folder.glob("last*.ckpt")))
             if isinstance(checkpoint, dict)]
    steps = [step for step in steps if isinstance(step, int)]
    return max(steps) if steps else None


def run_storage_error(what: str, path: Path, error: OSError, run_dir: Path) -> StorageError:
    """One line for a write of the run that the storage refused: the file, the cause, what survived and
    how to continue (``... the last good checkpoint (step N) is intact: free space and --resume RUN``)."""
    step = newest_step(run_dir / "checkpoints")
    survived = (f"the last good checkpoint (step {step}) is intact" if step is not None
                else "no checkpoint was written yet")
    how = f"--resume {run_dir}" if step is not None else "run again"
    return storage_error(path, error, what=what, advice=f"{survived}: {remedy(error)} and {how}")


class RunCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer for a run directory, safe on any filesystem layout.

    Lightning's own ``TorchCheckpointIO`` writes through an fsspec transaction whose temporary file lies
    under ``$TMPDIR``; when that is another filesystem (node-local ``/dev/shm``, runs on NFS) the final
    move is a copy onto the existing file, in place. Here every checkpoint is a temporary file in the
    checkpoint's own directory (``lightning_nas.io.stage``: flushed, fsynced), renamed over the target.
    Saving ``last.ckpt`` first renames the current one to ``last.prev.ckpt`` (a file of its own, the
    fallback of ``choose_checkpoint``); a kill between the two renames leaves ``last.prev.ckpt`` and a
    temporary file, which ``choose_checkpoint`` ignores and the next save removes.

    ``hold()`` makes saves wait for ``commit()`` (``RunCheckpoint`` commits once the metrics rows up to
    the checkpoint are on disk); outside it a save is complete when it returns. A storage fault (disk
    full, read-only) is one ``StorageError`` line; the previous checkpoints stay as they were.
    """

    def __init__(self, keep_previous: dict[str, str] | None = None) -> None:
        super().__init__()
        self.keep_previous = {LAST: PREVIOUS} if keep_previous is None else dict(keep_previous)
        self._held = False
        self._pending: list[tuple[StagedFile, Any]] = []  # (the temporary file, its global step)
        self._steps: dict[Path, Any] = {}  # the global step of each file this writer put in place

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if "://" in str(path) and not str(path).startswith("file://"):  # object storage: fsspec's own protocol
            return super().save_checkpoint(checkpoint, path, storage_options)
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__}.save_checkpoint does not take storage_options")
        target = Path(str(path).removeprefix("file://"))
        held = {staged.temporary for staged, _ in self._pending}
        for stale in target.parent.glob(temporary_pattern(target)) if target.parent.is_dir() else []:
            if stale not in held:  # a write killed earlier (one process per run directory: the lock)
                stale.unlink(missing_ok=True)
        try:
            staged = stage(target, lambda handle: torch.save(checkpoint, handle))
        except StorageError as error:
            raise run_storage_error("checkpoint", target, error.__cause__ or error, target.parent.parent) from None
        self._pending.append((staged, checkpoint.get("global_step")))
        if not self._held:
            self.commit()

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Saves inside stay temporary files until ``commit()``."""
        self._held = True
        try:
            yield
        finally:
            self._held = False

    @property
    def pending(self) -> bool:
        return bool(self._pending)

    def commit(self) -> None:
        """Rename the held checkpoints into place (the current ``last.ckpt`` becoming ``last.prev.ckpt``,
        unless it is of the same step: the previous checkpoint is always an earlier one)."""
        while self._pending:
            staged, step = self._pending.pop(0)
            previous = self.keep_previous.get(staged.target.name)
            if previous and self._step_of(staged.target) == step:
                previous = None
            try:
                staged.commit(keep_previous_as=staged.target.with_name(previous) if previous else None)
            except OSError as error:
                self.discard()
                if is_storage_fault(error):
                    raise run_storage_error("checkpoint", staged.target, error, staged.target.parent.parent) from None
                raise
            self._steps[staged.target] = step

    def _step_of(self, path: Path) -> Any:
        if path not in self._steps:  # (written by an earlier process: read it, memory-mapped)
            checkpoint, _ = read_checkpoint(path)
            self._steps[path] = checkpoint.get("global_step") if isinstance(checkpoint, dict) else None
        return self._steps[path]

    def discard(self) -> None:
        """Forget the held checkpoints (the committed ones stay the resume point)."""
        while self._pending:
            self._pending.pop()[0].discard()


class RunCheckpoint(ModelCheckpoint):
    """``checkpoints/last.ckpt`` is always the newest checkpoint (also after the run directory moved:
    no ``last-v1.ckpt``), the one before it stays as ``last.prev.ckpt`` (the fallback when the newest
    is damaged), and a pending SIGTERM/SIGINT saves one at the end of the current step and stops the
    run through Lightning's own SIGTERM exit (after the step's metrics are logged).

    A checkpoint counts (is renamed into place by ``RunCheckpointIO``) only once every metrics row up
    to it is on disk. Lightning saves in ``on_train_batch_end``, before it logs that step's row (and,
    at the end of an epoch, the epoch's rows); a resume never logs those rows again
    (``RunCSVLogger``). So the checkpoint waits as a temporary file until the next step starts, the
    training ends or the stop signal exits, and the loggers are flushed (``metrics.csv`` fsynced)
    before it is committed: a kill in between resumes from the checkpoint before, whose rows are all
    on disk, and the rows after it are cut and logged again.
    """

    def __init__(self, dirpath: str, every_n_train_steps: int, stop_at_epoch: int | None = None) -> None:
        super().__init__(dirpath=dirpath, save_last=True, save_top_k=0, every_n_train_steps=every_n_train_steps,
                         enable_version_counter=False)
        self.stopped_at: int | None = None
        self.stop_at_epoch = stop_at_epoch

    def on_train_epoch_end(self, trainer: Trainer, pl_module: Any) -> None:
        """``--stop_at_epoch N``: after the N-th epoch (all of its hooks, the strategy's schedule step
        included: checkpoint callbacks run last), save and end the fit, keeping ``trainer.max_epochs``
        and so every schedule. The checkpoint is the one of an epoch's end, from which ``--resume``
        goes on with the next epoch exactly as the run that never stopped (tuning's promoted trials,
        ``lightning_nas.tuning``)."""
        super().on_train_epoch_end(trainer, pl_module)
        if self.stop_at_epoch is not None and trainer.current_epoch + 1 >= self.stop_at_epoch:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))  # (after the schedule's step)
            trainer.should_stop = True

    def _save_checkpoint(self, trainer: Trainer, filepath: str) -> None:
        io = trainer.strategy.checkpoint_io
        if not isinstance(io, RunCheckpointIO):
            return super()._save_checkpoint(trainer, filepath)
        self._commit(trainer)  # (one checkpoint in flight at a time)
        with io.hold():
            super()._save_checkpoint(trainer, filepath)

    def _commit(self, trainer: Trainer) -> None:
        io = trainer.strategy.checkpoint_io
        if isinstance(io, RunCheckpointIO) and io.pending:
            for logger in trainer.loggers:
                (getattr(logger, "save_durably", None) or logger.save)()
            io.commit()

    def on_train_batch_start(self, trainer: Trainer, *args: Any, **kwargs: Any) -> None:
        super().on_train_batch_start(trainer, *args, **kwargs)
        self._commit(trainer)  # the previous step's rows are logged now

    def on_train_end(self, trainer: Trainer, pl_module: Any) -> None:
        # Lightning saves once more when this process saved nothing; a resume of a run killed after its final
        # checkpoint keeps that one (same step), as an uninterrupted run does
        if self._last_checkpoint_saved or newest_step(Path(self.dirpath or "")) != trainer.global_step:
            super().on_train_end(trainer, pl_module)
        self._commit(trainer)

    def on_exception(self, trainer: Trainer, pl_module: Any, exception: BaseException) -> None:
        super().on_exception(trainer, pl_module, exception)
        io = trainer.strategy.checkpoint_io
        if not isinstance(io, RunCheckpointIO):
            return
        if isinstance(exception, SIGTERMException):  # Lightning's stop, after the step's rows were logged
            self._commit(trainer)
        else:  # rows may be missing: the committed checkpoint stays the resume point
            io.discard()

    def on_train_batch_end(self, trainer: Trainer, *args: Any, **kwargs: Any) -> None:
        super().on_train_batch_end(trainer, *args, **kwargs)
        if signals.pending() is None or trainer.world_size > 1 or self.stopped_at is not None:
            return  # (DDP: Lightning's own SIGTERM handling stops every rank; the last periodic checkpoint counts)
        if self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        self.stopped_at = trainer.global_step
        trainer._signal_connector.received_sigterm = True  # Lightning stops after logging this step
