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

    def mark_consumed(self, batch: dict[str, Any]) -> None:
        """A training batch reached the model (Lightning prefetches one ahead, so iteration is too early)."""
        if self._train_batches is not None:
            self._train_batches.mark_consumed(batch["epoch"], batch["index"])
