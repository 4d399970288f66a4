"""What every lightning_nas DataModule shares: its place among DDP processes, the training splits
a strategy needs, and the bookkeeping that makes the data position in a checkpoint exact."""
from __future__ import annotations

from typing import Any, Optional

from pytorch_lightning import LightningDataModule

from lightning_nas.data.batches import SeededBatches
from lightning_nas.errors import RecipeError


class SeededDataModule(LightningDataModule):
    _train_batches: Optional[SeededBatches] = None

    def _rank(self) -> tuple[int, int]:
        """(global rank, world size) of this process; (0, 1) outside a Trainer."""
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def training_splits(self, has_arch_split: bool) -> list[str]:
        """``weights``, plus ``arch`` for strategies that learn architecture parameters on held-out data."""
        module = self.trainer.lightning_module if self.trainer is not None else None
        if not getattr(module, "uses_architecture_split", False):
            return ["weights"]
        if not has_arch_split:
            raise RecipeError(f"{type(module).__name__} learns architecture parameters on a separate split: "
                             "set data.arch_split (e.g. 0.5 as in DARTS)")
        return ["weights", "arch"]

    def continue_epochs(self, batches: SeededBatches) -> SeededBatches:
        """Batches that start at the epoch the fit loop is at. Lightning restores the data position from
        a checkpoint saved inside an epoch (``SeededBatches.load_state_dict``), but none from one saved at
        an epoch's end (a finished run given more epochs, ``--stop_at_epoch``), and it creates that
        resumed run's first iterator before it updates ``current_epoch``: without this the run would
        draw epoch 0's order and augmentation again. The loop's count of processed epochs is right in
        both cases (and equals the epoch index at every later epoch's start)."""
        loop = getattr(self.trainer, "fit_loop", None)  # None outside a Trainer (a DataModule used on its own)
        if loop is not None:
            batches.epoch_now = lambda: loop.epoch_progress.current.processed
        return batches

    def mark_consumed(self, batch: dict[str, Any]) -> None:
        """A training batch reached the model (Lightning prefetches one ahead, so iteration is too early)."""
        if self._train_batches is not None:
            self._train_batches.mark_consumed(batch["epoch"], batch["index"])
