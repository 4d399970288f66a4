"""Progress for logs: Lightning's progress bars redraw a terminal line, which a log file (a cluster
job's stdout) records as carriage returns and escape codes; ``PlainProgress`` writes plain lines."""
from __future__ import annotations

import time
from typing import Any

from pytorch_lightning import Trainer
from pytorch_lightning.callbacks.progress import ProgressBar


class PlainProgress(ProgressBar):
    """Progress for logs (stdout not a terminal): a plain line per epoch at most every ``interval`` seconds
    (and the first and last epoch), no carriage returns or cursor movement."""

    def __init__(self, interval: float = 10.0) -> None:
        super().__init__()
        self.interval = interval
        self._enabled = True
        self._last = 0.0
        self._start = 0.0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer: Trainer, pl_module: Any) -> None:
        self._start = self._last = time.monotonic()

    def on_train_epoch_start(self, trainer: Trainer, pl_module: Any) -> None:
        # the previous epoch's metrics are complete only now (Lightning reduces them after on_train_epoch_end)
        if trainer.current_epoch > 0 and (trainer.current_epoch == 1 or time.monotonic() - self._last >= self.interval):
            self._line(trainer, pl_module, trainer.current_epoch)

    def on_train_end(self, trainer: Trainer, pl_module: Any) -> None:
        self._line(trainer, pl_module, trainer.current_epoch)

    def _line(self, trainer: Trainer, pl_module: Any, epochs_done: int) -> None:
        if not (self._enabled and trainer.is_global_zero):
            return
        now = self._last = time.monotonic()
        metrics = self.get_metrics(trainer, pl_module)
        shown = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items()
                          if k != "v_num" and not k.endswith("_step"))
        total = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
        print(f"[lightning_nas] epoch {epochs_done}{total}, step {trainer.global_step}"
              + (f": {shown}" if shown else "") + f" ({now - self._start:.0f} s)", flush=True)
