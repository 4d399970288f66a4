"""``RUN_DIR/metrics.csv`` that survives a kill and a resume.

Lightning's CSV writer buffers rows and deletes an existing metrics file when its directory is not
empty, so a killed-and-resumed run would lose its history. This logger flushes every row and, on
resume, continues the file from the checkpoint's step.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment

from lightning_nas.io import atomic_write_text


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
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            header = list(reader.fieldnames or [])
            rows = [row for row in reader if row.get("step") and int(row["step"]) <= self._keep_until_step]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(path, buffer.getvalue())
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
            self._rewrite_with_new_header(self.metrics_keys)
        with open(path, "a" if exists else "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.metrics_keys, lineterminator="\n")
            if not exists:
                writer.writeheader()
            writer.writerows(self.metrics)
        self.metrics = []

    def _rewrite_with_new_header(self, fieldnames: list[str]) -> None:
        path = Path(self.metrics_file_path)
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=fieldnames, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(path, buffer.getvalue())


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

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ContinuingWriter(self.log_dir, self._keep_until_step)
        return self._experiment
