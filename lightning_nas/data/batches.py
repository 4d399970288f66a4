"""Seeded, resumable mini-batches over index sets of in-memory tensors.

Batch ``i`` of epoch ``e`` is a pure function of (seed, split, e, i, rank): the epoch order is a
permutation drawn from its own generator, identical on every DDP rank, of which rank ``r`` takes
every ``world_size``-th element. Nothing sequential needs saving, only the position, which Lightning
stores in the checkpoint through ``state_dict`` (the ``_Stateful`` protocol of its fit loop).
"""
from __future__ import annotations

from typing import Any, Callable, Iterator, Mapping

import torch

from lightning_nas.seeding import generator
from lightning_nas.errors import RecipeError


class SeededBatches:
    """Training batches: ``{"epoch", "index", <split>: {"images", "labels"}, ...}`` per step.

    Several splits (weights and architecture data for bi-level strategies) advance in lockstep;
    an epoch has as many steps as the smallest split has full batches.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, splits: Mapping[str, torch.Tensor],
                 batch_size: int, seed: int, rank: int = 0, world_size: int = 1) -> None:
        self.images, self.labels = images, labels
        self.splits = dict(splits)
        self.batch_size = batch_size
        self.seed, self.rank, self.world_size = seed, rank, world_size
        for name, idx in self.splits.items():
            if len(idx) // world_size < batch_size:
                raise RecipeError(
                    f"the {name} split has {len(idx)} images, fewer than one batch of data.batch_size={batch_size} "
                    f"per process ({world_size} processes): lower the batch size or enlarge the split")
        self.epoch = -1  # the epoch being (or last) iterated
        self._next_index = 0  # first batch not yet consumed in self.epoch
        self._resume: tuple[int, int] | None = None
        #: the trainer's epoch, where a trainer drives the batches (``SeededDataModule.continue_epochs``)
        self.epoch_now: Callable[[], int] | None = None

    def __len__(self) -> int:
        return min(len(idx) // self.world_size // self.batch_size for idx in self.splits.values())

    def _epoch_order(self, name: str, epoch: int) -> torch.Tensor:
        idx = self.splits[name]
        order = idx[torch.randperm(len(idx), generator=generator(self.seed, "order", name, epoch))]
        return order[self.rank::self.world_size]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self._resume is not None:
            epoch, start = self._resume
            self._resume = None
            if start >= len(self) or epoch < 0:  # epoch finished, or saved before the first epoch began
                epoch, start = epoch + 1, 0
        else:
            epoch, start = (self.epoch_now() if self.epoch_now is not None else self.epoch + 1), 0
        self.epoch, self._next_index = epoch, start
        orders = {name: self._epoch_order(name, epoch) for name in self.splits}
        for i in range(start, len(self)):
            batch: dict[str, Any] = {"epoch": epoch, "index": i}
            for name, order in orders.items():
                take = order[i * self.batch_size:(i + 1) * self.batch_size]
                batch[name] = {"images": self.images[take], "labels": self.labels[take]}
            yield batch

    def mark_consumed(self, epoch: int, index: int) -> None:
        """Called when batch ``index`` reaches the model (not when it is prefetched)."""
        self.epoch, self._next_index = epoch, index + 1

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "next_index": self._next_index, "seed": self.seed,
                "world_size": self.world_size}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state.get("seed", self.seed) != self.seed:
            raise RecipeError(f"checkpointed data order (seed {state.get('seed')}) does not match this run "
                              f"(seed {self.seed})")
        self.epoch = int(state["epoch"])
        self._next_index = int(state["next_index"])
        saved_world = int(state.get("world_size", self.world_size))
        if saved_world != self.world_size:
            # Every rank reads the same epoch permutation with a stride of world_size, so after n batches of
            # every rank the first n * world_size * batch_size samples of the permutation are consumed. On
            # another number of processes the run continues after the same samples (rounded up to whole
            # batches); the global batch size changes with the device count, so the numbers that follow
            # differ from those of an uninterrupted run on either count.
            self._next_index = -(-self._next_index * saved_world // self.world_size)
            from pytorch_lightning.utilities import rank_zero_warn

            rank_zero_warn(f"resuming a checkpoint of {saved_world} process(es) on {self.world_size}: the data "
                           f"position is mapped to the samples already seen (batch {self._next_index} of epoch "
                           f"{self.epoch}); the global batch size changes, so results differ from an uninterrupted run")
        self._resume = (self.epoch, self._next_index)


class EvalBatches:
    """Fixed-order batches of one split (validation, test): ``(images, labels)`` uint8/int64."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor, batch_size: int,
                 rank: int = 0, world_size: int = 1) -> None:
        self.images, self.labels = images, labels
        self.indices = indices[rank::world_size]
        self.batch_size = batch_size

    def __len__(self) -> int:
        return (len(self.indices) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for start in range(0, len(self.indices), self.batch_size):
            take = self.indices[start:start + self.batch_size]
            yield self.images[take], self.labels[take]
