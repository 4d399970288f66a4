"""The image DataModule: CIFAR-10/100, ImageNet16-120 or digits held as uint8 tensors, augmented per batch on device."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Union

import torch

from lightning_nas.data.augment import Augmentation, normalize
from lightning_nas.data.base import SeededDataModule
from lightning_nas.data.batches import EvalBatches, SeededBatches
from lightning_nas.data.nb201_splits import OfficialSplit, read_split
from lightning_nas.data.sources import IMAGE_SOURCES, ImageData
from lightning_nas.seeding import generator
from lightning_nas.errors import RecipeError

Size = Union[int, float]


def _count(size: Size, total: int, key: str) -> int:
    """A split size given as a fraction (0 <= f < 1) or a count (int >= 0) -> count."""
    if isinstance(size, bool) or size < 0:
        raise RecipeError(f"data.{key} must be a fraction in [0, 1) or a non-negative count, got {size!r}")
    if isinstance(size, float):
        if size >= 1:
            raise RecipeError(f"data.{key}={size}: a fraction must be below 1; write an integer for a count")
        return int(round(size * total))
    return int(size)


def _check_int(key: str, value: object, minimum: int, what: str = "") -> None:
    """``key`` must be None or an integer >= ``minimum``; one line naming it otherwise."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise RecipeError(f"{key} must be an integer >= {minimum}" + (f" ({what})" if what else "") + f", got {value!r}")


class ImageDataModule(SeededDataModule):
    """Deterministic splits of a dataset's training images, plus its official test set.

    The training images are permuted once by the seed and cut into a validation split (ranking
    and selection), an architecture split (for bi-level strategies) and the weights split, of
    which ``train_portion`` is used. Every batch and its augmentation follow the seed.

    With ``split_file`` (NAS-Bench-201's official splits, ``lightning_nas.data.nb201_splits``) the
    validation split is the file's instead: for ``cifar-split.txt`` its ``valid`` half of the training
    images (training uses the ``train`` half), for the CIFAR-100 / ImageNet16-120 test-split files the
    ``xvalid`` half of the test images (training uses all training images, and the test set becomes
    the ``xtest`` half). ``val_split`` is then unused; ``arch_split`` is still cut, by the seed, from
    the training images the file leaves for training.

    Args:
        dataset: registered source name (``digits``, ``cifar10``, ``cifar100``, ``imagenet16-120``).
        data_dir: where the source looks for (and downloads) its files.
        image_size: resize for sources that allow it (digits: default 16).
        batch_size: training batch size per process; evaluation uses it too unless
            ``eval_batch_size`` is set (batch-statistics BN depends on it).
        val_split, arch_split: fraction of the training images or a count.
        train_portion: fraction of the weights split actually used (low-fidelity studies).
        crop_padding, horizontal_flip, cutout: training augmentation; cutout_prob: the probability that an
            image is cut out (NAS-Bench-1Shot1, App. F; 1: every image, DeVries & Taylor 2017).
        split_file: an NAS-Bench-201 split file (``cifar-split.txt``, ``cifar100-test-split.txt``,
            ``imagenet-16-120-test-split.txt``); None (default): seeded splits of the training images.
        seed: the run seed (linked from ``seed_everything`` by the CLI).
    """

    def __init__(self, dataset: str = "digits", data_dir: str = "data", download: bool = True,
                 image_size: int | None = None, batch_size: int = 64, eval_batch_size: int | None = None,
                 val_split: Size = 0.2, arch_split: Size = 0, train_portion: float = 1.0,
                 crop_padding: int = 4, horizontal_flip: bool = True, cutout: int = 0, cutout_prob: float = 1.0,
                 split_file: str | None = None, seed: int = 0) -> None:
        super().__init__()
        IMAGE_SOURCES.get(dataset)  # fail early on an unknown name
        _check_int("data.batch_size", batch_size, 1)
        _check_int("data.eval_batch_size", eval_batch_size, 1, "or null: the training batch size")
        _check_int("data.image_size", image_size, 1, "pixels, or null: the dataset's own size")
        for key, value in (("crop_padding", crop_padding), ("cutout", cutout)):
            _check_int(f"data.{key}", value, 0, "pixels; 0 turns it off")
        if not 0 <= cutout_prob <= 1:
            raise RecipeError(f"data.cutout_prob must be a probability in [0, 1], got {cutout_prob}")
        if not 0 < train_portion <= 1:
            raise RecipeError(f"data.train_portion must be in (0, 1], got {train_portion}")
        for key, size in (("val_split", val_split), ("arch_split", arch_split)):
            _count(size, 1, key)  # the type and range now; the count against the images when they are read
        self.dataset, self.data_dir, self.download, self.image_size = dataset, data_dir, download, image_size
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.val_split, self.arch_split, self.train_portion = val_split, arch_split, train_portion
        self.augmentation = Augmentation(crop_padding, horizontal_flip, cutout, cutout_prob)
        self.seed = seed
        self.split_file = split_file
        self._official: OfficialSplit | None = read_split(split_file) if split_file else None
        self._pool: torch.Tensor | None = None  # the training images an official split leaves for training
        self._data: ImageData | None = None
        self._splits: dict[str, torch.Tensor] | None = None

    # ---------------------------------------------------------------- data and splits
    @property
    def data(self) -> ImageData:
        if self._data is None:
            options: dict[str, Any] = {"data_dir": Path(self.data_dir), "download": self.download}
            if self.image_size is not None:
                options["image_size"] = self.image_size
            data = IMAGE_SOURCES.get(self.dataset)(**options)
            self.mean, self.std = data.channel_stats()
            self._data = self._apply_official_split(data) if self._official is not None else data
        return self._data

    def _apply_official_split(self, data: ImageData) -> ImageData:
        """The official halves as splits: held-out test images move behind the training images (as the
        ``val`` split's rows), so every loader keeps indexing one image tensor."""
        split = self._official
        n_train = len(data.train_labels)
        if split.of == "train":
            split.check_size(n_train)
            self._pool, self._official_val = split.kept, split.held_out
            return data
        split.check_size(len(data.test_labels))
        self._pool = torch.arange(n_train)
        self._official_val = torch.arange(n_train, n_train + len(split.kept))
        return ImageData(torch.cat([data.train_images, data.test_images[split.kept]]),
                         torch.cat([data.train_labels, data.test_labels[split.kept]]),
                         data.test_images[split.held_out], data.test_labels[split.held_out], data.num_classes)

    @property
    def num_classes(self) -> int:
        return self.data.num_classes

    @property
    def in_channels(self) -> int:
        return self.data.in_channels

    @property
    def splits(self) -> dict[str, torch.Tensor]:
        """Indices into the training images: ``val``, ``arch``, ``weights`` (disjoint)."""
        if self._splits is None and self._official is not None:
            self.data  # noqa: B018 - reads the images and the split
            pool = self._pool[torch.randperm(len(self._pool), generator=generator(self.seed, "split"))]
            n_arch = _count(self.arch_split, len(pool), "arch_split")
            if n_arch >= len(pool):
                raise RecipeError(f"data.arch_split ({n_arch}) leaves no training images out of the {len(pool)} "
                                  f"that {self.split_file} trains on")
            weights = pool[n_arch:]
            weights = weights[:max(1, int(round(self.train_portion * len(weights))))]
            self._splits = {"val": self._official_val, "arch": pool[:n_arch], "weights": weights}
        if self._splits is None:
            total = len(self.data.train_labels)
            n_val = _count(self.val_split, total, "val_split")
            n_arch = _count(self.arch_split, total, "arch_split")
            if n_val + n_arch >= total:
                raise RecipeError(f"data.val_split ({n_val}) + data.arch_split ({n_arch}) leave no training images "
                                 f"out of {total}")
            order = torch.randperm(total, generator=generator(self.seed, "split"))
            weights = order[n_val + n_arch:]
            weights = weights[:max(1, int(round(self.train_portion * len(weights))))]
            self._splits = {"val": order[:n_val], "arch": order[n_val:n_val + n_arch], "weights": weights}
        return self._splits

    def setup(self, stage: str | None = None) -> None:
        self.splits  # noqa: B018 - load and split once, before any loader is built

    # ---------------------------------------------------------------- loaders
    def train_dataloader(self) -> SeededBatches:
        names = self.training_splits(has_arch_split=len(self.splits["arch"]) > 0)
        rank, world = self._rank()
        self._train_batches = SeededBatches(self.data.train_images, self.data.train_labels,
                                            {n: self.splits[n] for n in names}, self.batch_size, self.seed, rank, world)
        return self.continue_epochs(self._train_batches)

    def val_dataloader(self) -> EvalBatches:
        rank, world = self._rank()
        return EvalBatches(self.data.train_images, self.data.train_labels, self.splits["val"], self.eval_batch_size,
                           rank, world)

    def test_dataloader(self) -> EvalBatches:
        rank, world = self._rank()
        test = self.data
        return EvalBatches(test.test_images, test.test_labels, torch.arange(len(test.test_labels)),
                           self.eval_batch_size, rank, world)

    # ---------------------------------------------------------------- on-device preparation
    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if isinstance(batch, dict) and "epoch" in batch:  # a training step
            self.mark_consumed(batch)
            epoch, index = batch["epoch"], batch["index"]
            rank, _ = self._rank()
            prepared = {}
            for name, part in batch.items():
                if isinstance(part, dict):
                    gen = generator(self.seed, "augment", name, epoch, index, rank, device=part["images"].device)
                    images = self.augmentation(part["images"], gen)
                    prepared[name] = (normalize(images, self.mean, self.std), part["labels"])
            return prepared
        images, labels = batch
        return normalize(images, self.mean, self.std), labels

    def split_batches(self, split: str, device: torch.device | str = "cpu", limit: int | None = None,
                      batch_size: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Normalised, unaugmented batches of a split in fixed order, for scoring outside the fit loop."""
        data = self.data
        if split == "test":
            images, labels, indices = data.test_images, data.test_labels, torch.arange(len(data.test_labels))
        else:
            images, labels, indices = data.train_images, data.train_labels, self.splits[split]
        if len(indices) == 0:
            raise RecipeError(f"the {split} split is empty: set data.{split}_split")
        loader = EvalBatches(images, labels, indices, batch_size or self.eval_batch_size)
        for count, (x, y) in enumerate(loader):
            if limit is not None and count >= limit:
                return
            yield normalize(x.to(device), self.mean, self.std), y.to(device)
