"""``RUN_DIR/metrics.csv`` that survives a kill and a resume.

Lightning's CSV writer buffers rows and deletes an existing metrics file when its directory is not
empty, so a killed-and-resumed run would lose its history. This logger flushes every row and, on
resume, continues the file from the checkpoint's step. ``RunCheckpoint`` calls ``save_durably``
(rows written and fsynced) before a checkpoint counts, so the rows up to a checkpoint's step are
always on disk when the resume cuts the file there. A row is appended all or nothing (a full disk
leaves no partial line), and a write the storage refuses is one ``StorageError`` line.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment
from pytorch_lightning.utilities.rank_zero import rank_zero_only

from lightning_nas.io import StorageError, append_text, atomic_write_text, fsync_file
from lightning_nas.run.checkpoints import run_storage_error


class _ContinuingWriter(ExperimentWriter):
    """metrics.csv that a resumed run continues instead of deleting (Lightning's writer removes it).

    Rows logged after the checkpoint (the killed run's lost steps, which the resumed run logs
    again) are dropped first: rows are kept up to the checkpoint's logging step
    (``_batches_that_stepped``), the step whose metrics are logged just after a checkpoint taken
    in ``on_train_batch_end`` and never logged again.
    """

    def __init__(self, log_dir: str, keep_until_step: int | None) -> None:
        self._keep_until_step = keep_until_step
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        path = Path(self.metrics_file_path)
        if self._keep_until_step is None or not path.is_file():
            path.unlink(missing_ok=True)  # a fresh run (config.yaml and run.json already sit beside it)
            return
        text = path.read_text()
        if not text.endswith("\n"):  # a line cut by a crash of the machine: never a row
            text = text[:text.rfind("\n") + 1]
        reader = csv.DictReader(io.StringIO(text))
        header = list(reader.fieldnames or [])
        if not header:  # nothing was logged before the kill
            path.unlink()
            return
        rows = [row for row in reader if row.get("step") and int(row["step"]) <= self._keep_until_step]
        self._replace(header, rows)
        self.metrics_keys = header

    # Lightning's writer uses csv's default CRLF line ending and rewrites the file in place when a new
    # column appears; one line ending ("\n", as the resume above writes) keeps a resumed run's
    # metrics.csv byte-identical to an uninterrupted one, and the rewrite is atomic.
    def save(self) -> None:
        if not self.metrics:
            return
        new_keys = self._record_new_keys()
        path = Path(self.metrics_file_path)
        exists = path.is_file()
        if new_keys and exists:
            with open(path, newline="") as handle:
                self._replace(self.metrics_keys, list(csv.DictReader(handle)))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.metrics_keys, lineterminator="\n")
        if not exists:
            writer.writeheader()
        writer.writerows(self.metrics)
        try:
            append_text(path, buffer.getvalue())
        except StorageError as error:
            # the run stops here; these rows come after the last checkpoint (whose rows are all on disk), so
            # the resume logs them again. Dropped, so that Lightning's clean-up does not fail on them a second time.
            self.metrics = []
            raise self._storage_error(error) from None
        self.metrics = []

    def _replace(self, fieldnames: list[str], rows: list[dict]) -> None:
        """The whole file rewritten (atomically) with these columns and rows."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=fieldnames, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        try:
            atomic_write_text(self.metrics_file_path, buffer.getvalue())
        except StorageError as error:
            raise self._storage_error(error) from None

    def _storage_error(self, error: StorageError) -> StorageError:
        original = error.__cause__ if isinstance(error.__cause__, OSError) else error
        return run_storage_error("metrics file", Path(self.metrics_file_path), original, Path(self.log_dir))


class RunCSVLogger(CSVLogger):
    """``RUN_DIR/metrics.csv``, flushed every step (a killed run loses no row it logged) and
    continued, not overwritten, by ``--resume``."""

    def __init__(self, run_dir: str, resume_from: Path | None = None) -> None:
        super().__init__(run_dir, name="", version="", flush_logs_every_n_steps=1)
        self._keep_until_step: int | None = None
        if resume_from is not None:
            import torch

            loops = torch.load(resume_from, map_location="cpu", weights_only=True, mmap=True).get("loops") or {}
            state = loops.get("fit_loop", {}).get("epoch_loop.state_dict", {})
            self._keep_until_step = int(state.get("_batches_that_stepped", 0))

    @rank_zero_only
    def save_durably(self) -> None:
        """Write the buffered rows and fsync ``metrics.csv``: what a checkpoint waits for."""
        self.save()
        path = Path(self.experiment.metrics_file_path) if self._experiment is not None else None
        if path is not None and path.is_file():
            try:
                fsync_file(path)
            except OSError as error:
                raise run_storage_error("metrics file", path, error, Path(self.log_dir)) from None

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ContinuingWriter(self.log_dir, self._keep_until_step)
        return self._experiment
