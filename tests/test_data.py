"""Seeded data: splits, determinism, DDP sharding, resumption, augmentation, CIFAR-10 files."""
from __future__ import annotations

import hashlib
import io
import itertools
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from lightning_nas.errors import DatasetError
from lightning_nas.data import Augmentation, ImageDataModule
from lightning_nas.data.batches import EvalBatches, SeededBatches
from lightning_nas.data.cifar10 import (FOLDER, TEST_FILES, TRAIN_FILES, DatasetNotFoundError, fetch_and_extract,
                                        read_cifar10)
from lightning_nas.seeding import generator


# ------------------------------------------------------------------ CIFAR-format fixture
def _cifar_batches(per_file: int = 6, seed: int = 0) -> dict[str, dict[bytes, object]]:
    rng = np.random.default_rng(seed)
    return {name: {b"data": rng.integers(0, 256, (per_file, 3072), dtype=np.uint8),
                   b"labels": [int(v) for v in rng.integers(0, 10, per_file)],
                   b"batch_label": name.encode()}
            for name in TRAIN_FILES + TEST_FILES}


def _write_cifar(root: Path, per_file: int = 6) -> dict[str, dict[bytes, object]]:
    batches = _cifar_batches(per_file)
    folder = root / FOLDER
    folder.mkdir(parents=True)
    for name, entry in batches.items():
        with (folder / name).open("wb") as handle:
            pickle.dump(entry, handle)
    return batches


@pytest.fixture
def cifar_dir(tmp_path: Path) -> Path:
    _write_cifar(tmp_path, per_file=40)  # 200 training images, 40 test images
    return tmp_path


def _module(dataset: str, data_dir: Path | None = None, **kwargs) -> ImageDataModule:
    options = dict(dataset=dataset, batch_size=16, seed=0, download=False)
    if data_dir is not None:
        options["data_dir"] = str(data_dir)
    if dataset == "digits":
        options["image_size"] = 8
    options.update(kwargs)
    return ImageDataModule(**options)


# ------------------------------------------------------------------ splits
@pytest.mark.parametrize("dataset", ["digits", "cifar10"])
def test_split_sizes_and_disjointness(dataset, cifar_dir):
    dm = _module(dataset, cifar_dir, val_split=0.25, arch_split=0.1)
    total = len(dm.data.train_labels)
    assert total == (1438 if dataset == "digits" else 200)
    splits = dm.splits
    assert len(splits["val"]) == round(0.25 * total)
    assert len(splits["arch"]) == round(0.1 * total)
    assert len(splits["weights"]) == total - len(splits["val"]) - len(splits["arch"])
    together = torch.cat(list(splits.values()))
    assert len(set(together.tolist())) == total  # disjoint and covering every training image
    assert sorted(together.tolist()) == list(range(total))

    counts = _module(dataset, cifar_dir, val_split=30, arch_split=20).splits
    assert (len(counts["val"]), len(counts["arch"])) == (30, 20)
    assert len(counts["weights"]) == total - 50


def test_train_portion_and_split_errors():
    full = _module("digits", val_split=0.2).splits
    half = _module("digits", val_split=0.2, train_portion=0.5).splits
    assert torch.equal(full["val"], half["val"])  # the portion never changes the validation split
    assert len(half["weights"]) == round(0.5 * len(full["weights"]))
    assert set(half["weights"].tolist()) <= set(full["weights"].tolist())
    with pytest.raises(ValueError, match="train_portion"):
        _module("digits", train_portion=0.0)
    with pytest.raises(ValueError, match="leave no training images"):
        _module("digits", val_split=0.6, arch_split=0.4).splits  # noqa: B018
    with pytest.raises(ValueError, match="fraction must be below 1"):
        _module("digits", val_split=1.0).splits  # noqa: B018


def test_splits_follow_the_seed():
    a, b, c = (_module("digits", seed=s).splits for s in (3, 3, 4))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["val"], c["val"])


# ------------------------------------------------------------------ determinism of training batches
def _prepared_epochs(dm: ImageDataModule, epochs: int = 2) -> list[tuple[torch.Tensor, torch.Tensor]]:
    loader = dm.train_dataloader()
    out = []
    for _ in range(epochs):
        for batch in loader:
            prepared = dm.on_after_batch_transfer(batch, 0)
            out.append(prepared["weights"])
    return out


@pytest.mark.parametrize("dataset", ["digits", "cifar10"])
def test_same_seed_same_batches_including_augmentation(dataset, cifar_dir):
    options = dict(cutout=4, val_split=0.2)
    first = _prepared_epochs(_module(dataset, cifar_dir, seed=11, **options))
    again = _prepared_epochs(_module(dataset, cifar_dir, seed=11, **options))
    other = _prepared_epochs(_module(dataset, cifar_dir, seed=12, **options))
    assert len(first) == len(again) == len(other) > 2
    for (x1, y1), (x2, y2) in zip(first, again, strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not all(torch.equal(x1, x2) for (x1, _), (x2, _) in zip(first, other, strict=True))
    # the two epochs differ from each other (new order, new augmentation)
    half = len(first) // 2
    assert not torch.equal(first[0][0], first[half][0])


def test_augmentation_depends_on_batch_not_only_on_seed(cifar_dir):
    dm = _module("cifar10", cifar_dir, val_split=0.2)
    loader = dm.train_dataloader()
    batch = next(iter(loader))
    a = dm.on_after_batch_transfer(batch, 0)["weights"][0]
    b = dm.on_after_batch_transfer(batch, 0)["weights"][0]
    assert torch.equal(a, b)  # a pure function of (seed, epoch, index): re-preparing gives the same
    moved = dict(batch, index=batch["index"] + 1)
    assert not torch.equal(dm.on_after_batch_transfer(moved, 0)["weights"][0], a)


# ------------------------------------------------------------------ SeededBatches
def _data(n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.arange(n, dtype=torch.int64).view(n, 1, 1, 1).to(torch.uint8)
    return images, torch.arange(n)


def _labels(loader: SeededBatches, split: str = "weights", consume: bool = False) -> list[list[int]]:
    out = []
    for batch in loader:
        if consume:
            loader.mark_consumed(batch["epoch"], batch["index"])
        out.append(batch[split]["labels"].tolist())
    return out


def test_ddp_ranks_take_disjoint_halves_of_one_permutation():
    images, labels = _data(64)
    splits = {"weights": torch.arange(10, 58)}  # 48 images
    single = SeededBatches(images, labels, splits, batch_size=4, seed=5)
    ranks = [SeededBatches(images, labels, splits, batch_size=4, seed=5, rank=r, world_size=2) for r in range(2)]
    assert len(single) == 12 and [len(r) for r in ranks] == [6, 6]
    for _ in range(2):  # two epochs
        order = [i for b in _labels(single) for i in b]
        per_rank = [[i for b in _labels(r) for i in b] for r in ranks]
        assert set(per_rank[0]).isdisjoint(per_rank[1])
        assert sorted(per_rank[0] + per_rank[1]) == list(range(10, 58))
        # rank r takes every second element of the same epoch permutation
        assert per_rank[0] == order[0::2] and per_rank[1] == order[1::2]


def test_seeded_batches_epochs_and_lockstep_splits():
    images, labels = _data(64)
    loader = SeededBatches(images, labels, {"weights": torch.arange(0, 40), "arch": torch.arange(40, 64)},
                           batch_size=8, seed=1)
    assert len(loader) == 3  # the smaller split has 3 full batches
    epoch0 = list(loader)
    epoch1 = list(loader)
    assert [b["epoch"] for b in epoch0 + epoch1] == [0, 0, 0, 1, 1, 1]
    assert [b["index"] for b in epoch0] == [0, 1, 2]
    assert all(set(b["arch"]["labels"].tolist()) <= set(range(40, 64)) for b in epoch0)
    assert epoch0[0]["weights"]["labels"].tolist() != epoch1[0]["weights"]["labels"].tolist()
    assert torch.equal(epoch0[1]["weights"]["images"].flatten().long(), epoch0[1]["weights"]["labels"])
    with pytest.raises(ValueError, match="fewer than one batch"):
        SeededBatches(images, labels, {"weights": torch.arange(10)}, batch_size=8, seed=1, world_size=2)


@pytest.mark.parametrize("consumed", [0, 1, 4, 6])
def test_resume_yields_exactly_the_remaining_batches(consumed):
    images, labels = _data(64)
    splits = {"weights": torch.arange(48)}
    reference = SeededBatches(images, labels, splits, batch_size=8, seed=3)
    expected = _labels(reference) + _labels(reference)  # epochs 0 and 1, 6 batches each

    loader = SeededBatches(images, labels, splits, batch_size=8, seed=3)
    _labels(loader, consume=True)  # epoch 0
    it = iter(loader)  # epoch 1, of which `consumed` batches reach the model
    for _ in range(consumed):
        batch = next(it)
        loader.mark_consumed(batch["epoch"], batch["index"])
    state = loader.state_dict()

    fresh = SeededBatches(images, labels, splits, batch_size=8, seed=3)
    fresh.load_state_dict(state)
    remaining = _labels(fresh, consume=True)
    if consumed < 6:
        assert remaining == expected[6 + consumed:]
    else:  # the epoch was complete: resume starts the next one
        follow = SeededBatches(images, labels, splits, batch_size=8, seed=3)
        for _ in range(3):
            third = _labels(follow)
        assert remaining == third
    # and training continues with the following epoch as an uninterrupted run would
    assert fresh.epoch == (1 if consumed < 6 else 2)


def test_resume_from_a_state_saved_before_any_batch():
    images, labels = _data(64)
    splits = {"weights": torch.arange(48)}
    reference = SeededBatches(images, labels, splits, batch_size=8, seed=3)
    state = reference.state_dict()  # nothing iterated yet
    fresh = SeededBatches(images, labels, splits, batch_size=8, seed=3)
    fresh.load_state_dict(state)
    assert _labels(fresh) == _labels(reference)  # both start with epoch 0


def test_resume_rejects_another_seed():
    images, labels = _data(64)
    splits = {"weights": torch.arange(48)}
    state = SeededBatches(images, labels, splits, batch_size=8, seed=3).state_dict()
    with pytest.raises(ValueError, match="does not match"):
        SeededBatches(images, labels, splits, batch_size=8, seed=4).load_state_dict(state)


def test_resume_on_another_number_of_processes_continues_after_the_samples_already_seen():
    """A 2-process checkpoint resumed on 1 process (and back) reads exactly the samples the two
    ranks had not reached yet: the epoch permutation is shared, ranks read it with a stride."""
    images, labels = _data(64)
    splits = {"weights": torch.arange(48)}
    ranks = [SeededBatches(images, labels, splits, batch_size=4, seed=3, rank=r, world_size=2) for r in range(2)]
    seen: list[int] = []
    for loader in ranks:
        for batch in itertools.islice(loader, 2):  # two batches on each rank
            seen += batch["weights"]["labels"].tolist()
            loader.mark_consumed(batch["epoch"], batch["index"])
    single = SeededBatches(images, labels, splits, batch_size=4, seed=3)
    with pytest.warns(UserWarning, match="2 process"):
        single.load_state_dict(ranks[0].state_dict())
    rest = [y for batch in single for y in batch["weights"]["labels"].tolist()]
    whole = [y for batch in SeededBatches(images, labels, splits, batch_size=4, seed=3)
             for y in batch["weights"]["labels"].tolist()]
    assert sorted(seen + rest) == sorted(whole) and len(seen) == 16 and len(rest) == 32


def test_eval_batches_fixed_order_and_sharding():
    images, labels = _data(20)
    loader = EvalBatches(images, labels, torch.arange(3, 20), batch_size=5)
    assert len(loader) == 4
    assert [y.tolist() for _, y in loader] == [[3, 4, 5, 6, 7], [8, 9, 10, 11, 12], [13, 14, 15, 16, 17], [18, 19]]
    shards = [[i for _, y in EvalBatches(images, labels, torch.arange(20), 4, r, 2) for i in y.tolist()]
              for r in range(2)]
    assert shards == [list(range(0, 20, 2)), list(range(1, 20, 2))]


# ------------------------------------------------------------------ augmentation
def _images(n: int = 16, c: int = 3, h: int = 8, w: int = 8) -> torch.Tensor:
    """Distinct, non-zero pixel values, so that shifts and zero fills are unambiguous."""
    gen = torch.Generator().manual_seed(0)
    return torch.randint(1, 256, (n, c, h, w), generator=gen, dtype=torch.int64).to(torch.uint8)


def _shift(image: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """out[y, x] = image[y + dy, x + dx], zero outside."""
    out = torch.zeros_like(image)
    _, h, w = image.shape
    ys, xs = slice(max(0, -dy), min(h, h - dy)), slice(max(0, -dx), min(w, w - dx))
    ys_src, xs_src = slice(max(0, dy), min(h, h + dy)), slice(max(0, dx), min(w, w + dx))
    out[:, ys, xs] = image[:, ys_src, xs_src]
    return out


def test_crop_with_padding_is_a_zero_filled_shift():
    images = _images()
    out = Augmentation(crop_padding=2, horizontal_flip=False)(images, torch.Generator().manual_seed(1))
    assert out.shape == images.shape and out.dtype == torch.uint8
    shifts = []
    for image, result in zip(images, out, strict=True):
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if torch.equal(_shift(image, dy, dx), result)]
        assert len(matches) == 1
        shifts.append(matches[0])
    assert len(set(shifts)) > 4  # shifts vary across the batch
    again = Augmentation(crop_padding=2, horizontal_flip=False)(images, torch.Generator().manual_seed(1))
    assert torch.equal(out, again)


def test_flip_is_horizontal_and_random():
    images = _images(32)
    out = Augmentation(crop_padding=0, horizontal_flip=True)(images, torch.Generator().manual_seed(2))
    flipped = [torch.equal(r, i.flip(-1)) for i, r in zip(images, out, strict=True)]
    kept = [torch.equal(r, i) for i, r in zip(images, out, strict=True)]
    assert all(f != k for f, k in zip(flipped, kept, strict=True))  # each image is exactly one of the two
    assert 4 < sum(flipped) < 28


def test_cutout_zeroes_one_square():
    images = _images(32)
    size = 4
    out = Augmentation(crop_padding=0, horizontal_flip=False, cutout=size)(images, torch.Generator().manual_seed(3))
    full = 0
    for image, result in zip(images, out, strict=True):
        zero = result == 0
        assert torch.equal(zero[0], zero[1]) and torch.equal(zero[0], zero[2])  # same square in every channel
        assert torch.equal(result[~zero], image[~zero])  # everything else untouched
        ys, xs = torch.nonzero(zero[0], as_tuple=True)
        assert len(ys) > 0
        height, width = int(ys.max() - ys.min() + 1), int(xs.max() - xs.min() + 1)
        assert height <= size and width <= size
        assert len(ys) == height * width  # a (border-clipped) rectangle
        full += len(ys) == size * size
    assert full > 0


# ------------------------------------------------------------------ CIFAR-10 files
def test_cifar_reader_layout(tmp_path):
    batches = _write_cifar(tmp_path, per_file=3)
    data = read_cifar10(tmp_path, download=False)
    assert data.train_images.shape == (15, 3, 32, 32) and data.test_images.shape == (3, 3, 32, 32)
    assert data.train_images.dtype == torch.uint8 and data.train_labels.dtype == torch.int64
    # row layout: 1024 red, then green, then blue values, row-major
    raw = batches["data_batch_2"][b"data"]
    c, y, x = 1, 5, 7
    assert int(data.train_images[3 + 2, c, y, x]) == int(raw[2, c * 1024 + y * 32 + x])
    assert data.train_labels[3:6].tolist() == batches["data_batch_2"][b"labels"]
    assert data.test_labels.tolist() == batches["test_batch"][b"labels"]


def test_cifar_missing_folder_names_folder_and_files(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        read_cifar10(tmp_path / "nowhere", download=False)
    message = str(info.value)
    assert str(tmp_path / "nowhere" / FOLDER) in message
    assert all(name in message for name in TRAIN_FILES + TEST_FILES)
    assert "download is off" in message
    # through the DataModule, as a recipe would hit it
    with pytest.raises(DatasetNotFoundError, match="data_batch_1"):
        _module("cifar10", tmp_path / "nowhere").setup()


def test_cifar_one_missing_file_is_named(tmp_path):
    _write_cifar(tmp_path, per_file=2)
    (tmp_path / FOLDER / "data_batch_3").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"missing data_batch_3;"):
        read_cifar10(tmp_path, download=False)


@pytest.mark.parametrize("content", [
    b"this is not a pickle",
    pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1, 2]})[:40],  # truncated
    pickle.dumps({b"labels": [1, 2]}),  # no data
    pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [1, 2]}),  # wrong image size
    pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1, 2, 3]}),  # label count
    pickle.dumps(["a", "list"]),  # not a dict
    pickle.dumps("a string"),
], ids=["garbage", "truncated", "no-data", "wrong-size", "label-count", "list", "string"])
def test_cifar_corrupt_batch_is_a_clear_error(tmp_path, content):
    _write_cifar(tmp_path, per_file=2)
    path = tmp_path / FOLDER / "data_batch_4"
    path.write_bytes(content)
    with pytest.raises(DatasetError) as info:
        read_cifar10(tmp_path, download=False)
    assert str(path) in str(info.value)


def _archive(tmp_path: Path) -> tuple[Path, str, dict]:
    batches = _cifar_batches(per_file=2, seed=1)
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, entry in batches.items():
            payload = pickle.dumps(entry)
            info = tarfile.TarInfo(f"{FOLDER}/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return archive, hashlib.md5(archive.read_bytes()).hexdigest(), batches


def test_fetch_with_wrong_md5_extracts_nothing(tmp_path):
    archive, _, _ = _archive(tmp_path)
    target = tmp_path / "data"
    with pytest.raises(OSError, match="checksum mismatch"):
        fetch_and_extract(target, archive.as_uri(), md5="0" * 32)
    assert list(target.iterdir()) == []  # no dataset, no temporary leftovers
    with pytest.raises(DatasetNotFoundError, match="download failed: checksum mismatch"):
        read_cifar10(target, download=True, url=archive.as_uri(), md5="0" * 32)
    assert list(target.iterdir()) == []


def test_fetch_with_right_md5_extracts_readable_batches(tmp_path):
    archive, md5, batches = _archive(tmp_path)
    target = tmp_path / "data"
    folder = fetch_and_extract(target, archive.as_uri(), md5=md5)
    assert folder == target / FOLDER
    assert sorted(p.name for p in folder.iterdir()) == sorted(TRAIN_FILES + TEST_FILES)
    assert [p.name for p in target.iterdir()] == [FOLDER]  # the temporary folder is gone
    data = read_cifar10(target, download=False)
    assert data.train_labels.tolist() == [v for name in TRAIN_FILES for v in batches[name][b"labels"]]
    assert torch.equal(data.test_images.reshape(2, -1), torch.from_numpy(batches["test_batch"][b"data"]))


def test_read_cifar_downloads_when_missing(tmp_path):
    archive, md5, batches = _archive(tmp_path)
    target = tmp_path / "fresh"
    data = read_cifar10(target, download=True, url=archive.as_uri(), md5=md5)
    assert len(data.train_labels) == 10 and len(data.test_labels) == 2


def test_seeding_streams_are_independent_and_stable():
    a = torch.randint(1000, (5,), generator=generator(1, "order", "weights", 0))
    b = torch.randint(1000, (5,), generator=generator(1, "order", "weights", 0))
    c = torch.randint(1000, (5,), generator=generator(1, "order", "weights", 1))
    assert torch.equal(a, b) and not torch.equal(a, c)
