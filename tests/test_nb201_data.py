"""NAS-Bench-201's data sets and official splits: CIFAR-100 (python pickles, fine labels), ImageNet16-120
(1-based labels, first 120 classes kept) and the authors' split files, on tiny fixtures in the real formats."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from lightning_nas.data import ImageDataModule
from lightning_nas.data.cifar100 import read_cifar100
from lightning_nas.data.imagenet16 import TRAIN_FILES, read_imagenet16
from lightning_nas.data.nb201_splits import read_split
from lightning_nas.errors import DatasetError

N_TRAIN, N_TEST = 40, 20


def _dump(path: Path, entry: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        pickle.dump(entry, handle, protocol=2)  # the protocol of the published (Python 2) files


def write_cifar100(root: Path) -> dict:
    rng = np.random.default_rng(1)
    parts = {}
    for name, n in (("train", N_TRAIN), ("test", N_TEST)):
        parts[name] = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                       b"fine_labels": [int(v) for v in rng.integers(0, 100, n)],
                       b"coarse_labels": [int(v) for v in rng.integers(0, 20, n)], b"filenames": [b"x.png"] * n}
        _dump(root / "cifar-100-python" / name, parts[name])
    _dump(root / "cifar-100-python" / "meta", {b"fine_label_names": [b"apple"] * 100})
    return parts


def write_imagenet16(root: Path, per_file: int = 6) -> list[int]:
    """Labels cycle over 1..130, so some of every file fall outside the 120-class subset."""
    rng = np.random.default_rng(2)
    labels_seen = []
    for i, name in enumerate(TRAIN_FILES + ("val_data",)):
        labels = [1 + (i * per_file + j) * 7 % 130 for j in range(per_file)]
        labels_seen += labels
        _dump(root / "ImageNet16" / name, {"data": rng.integers(0, 256, (per_file, 768), dtype=np.uint8),
                                           "labels": labels, "mean": np.zeros(768)})
    return labels_seen


def write_split(path: Path, keys: tuple[str, str], halves: tuple[list[int], list[int]]) -> Path:
    path.write_text(json.dumps({k: ["int", [str(i) for i in v]] for k, v in zip(keys, halves, strict=True)}))
    return path


def test_cifar100_shapes_and_fine_labels(tmp_path):
    parts = write_cifar100(tmp_path)
    data = read_cifar100(tmp_path, download=False)
    assert data.train_images.shape == (N_TRAIN, 3, 32, 32) and data.test_images.shape == (N_TEST, 3, 32, 32)
    assert data.num_classes == 100 and data.train_labels.tolist() == parts["train"][b"fine_labels"]
    assert data.train_images[3].flatten().tolist() == parts["train"][b"data"][3].tolist()


def test_imagenet16_keeps_the_first_120_classes_zero_based(tmp_path):
    write_imagenet16(tmp_path)
    data = read_imagenet16(tmp_path)
    assert data.train_images.shape[1:] == (3, 16, 16) and data.num_classes == 120
    for labels in (data.train_labels, data.test_labels):
        assert labels.min() >= 0 and labels.max() <= 119
    expected = [1 + j * 7 % 130 for j in range(60)]  # the training files' labels, in order
    assert data.train_labels.tolist() == [v - 1 for v in expected if v <= 120]


@pytest.mark.parametrize("reader, folder", [(lambda d: read_cifar100(d, download=False), "cifar-100-python"),
                                            (read_imagenet16, "ImageNet16")])
def test_missing_or_corrupt_files_are_one_line(tmp_path, reader, folder):
    with pytest.raises(DatasetError) as error:
        reader(tmp_path)
    assert folder in str(error.value) and "\n" not in str(error.value)
    (write_cifar100 if folder.startswith("cifar") else write_imagenet16)(tmp_path)
    victim = tmp_path / folder / ("train" if folder.startswith("cifar") else "val_data")
    victim.write_bytes(victim.read_bytes()[:50])  # truncated
    with pytest.raises(DatasetError, match=str(victim)):
        reader(tmp_path)


def test_cifar10_valid_split_uses_the_files_halves(tmp_path):
    from test_data import _write_cifar

    _write_cifar(tmp_path, per_file=8)  # 40 training images
    train, valid = list(range(0, 40, 2)), list(range(1, 40, 2))
    split = write_split(tmp_path / "cifar-split.txt", ("train", "valid"), (train, valid))
    dm = ImageDataModule(dataset="cifar10", data_dir=str(tmp_path), download=False, split_file=str(split),
                         arch_split=4, seed=3)
    s = dm.splits
    assert s["val"].tolist() == valid
    assert sorted(s["arch"].tolist() + s["weights"].tolist()) == train and len(s["arch"]) == 4
    again = ImageDataModule(dataset="cifar10", data_dir=str(tmp_path), download=False, split_file=str(split),
                            arch_split=4, seed=3).splits
    assert all(torch.equal(s[k], again[k]) for k in s)


@pytest.mark.parametrize("dataset", ["cifar100", "imagenet16-120"])
def test_test_split_halves_become_validation_and_test(tmp_path, dataset):
    (write_cifar100 if dataset == "cifar100" else write_imagenet16)(tmp_path)
    plain = ImageDataModule(dataset=dataset, data_dir=str(tmp_path), download=False)
    n_train, n_test = len(plain.data.train_labels), len(plain.data.test_labels)
    xvalid, xtest = list(range(1, n_test, 2)), list(range(0, n_test, 2))
    split = write_split(tmp_path / "test-split.txt", ("xvalid", "xtest"), (xvalid, xtest))
    dm = ImageDataModule(dataset=dataset, data_dir=str(tmp_path), download=False, split_file=str(split))
    batches = list(dm.split_batches("val", limit=None, batch_size=1000))
    assert dm.splits["weights"].sort().values.tolist() == list(range(n_train))
    assert sum(len(y) for _, y in batches) == len(xvalid)
    assert torch.equal(dm.data.test_labels, plain.data.test_labels[xtest])
    assert torch.equal(dm.data.train_labels[dm.splits["val"]], plain.data.test_labels[xvalid])
    assert torch.equal(dm.mean, plain.mean)  # statistics of the training images only


@pytest.mark.parametrize("content, says", [
    (None, "does not exist"),
    ('{"xvalid": ["int", ["0", "1"]', "is not readable JSON"),
    ('{"foo": 1}', "not train/valid or xvalid/xtest"),
    ('{"xvalid": ["int", ["0", "1"]], "xtest": ["int", ["1", "2"]]}', "share indices"),
    ('{"train": ["int", ["a"]], "valid": ["int", ["1"]]}', "must list image indices"),
])
def test_malformed_split_file_is_one_line_naming_it(tmp_path, content, says):
    path = tmp_path / "cifar-split.txt"
    if content is not None:
        path.write_text(content)
    with pytest.raises(DatasetError) as error:
        read_split(path)
    assert str(path) in str(error.value) and says in str(error.value) and "\n" not in str(error.value)


def test_split_file_of_another_dataset_is_refused(tmp_path):
    write_cifar100(tmp_path)
    split = write_split(tmp_path / "s.txt", ("xvalid", "xtest"), ([0, 1], [2, N_TEST + 5]))
    dm = ImageDataModule(dataset="cifar100", data_dir=str(tmp_path), download=False, split_file=str(split))
    with pytest.raises(DatasetError, match="is it the split file of this dataset"):
        dm.setup()


def test_cifar100_download_is_checked_and_extracted(tmp_path):
    import hashlib
    import tarfile

    source = tmp_path / "source"
    parts = write_cifar100(source)
    archive = tmp_path / "cifar-100-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source / "cifar-100-python", arcname="cifar-100-python")
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    with pytest.raises(DatasetError, match="checksum mismatch"):
        read_cifar100(tmp_path / "bad", download=True, url=archive.as_uri(), md5="0" * 32)
    data = read_cifar100(tmp_path / "good", download=True, url=archive.as_uri(), md5=md5)
    assert data.test_labels.tolist() == parts["test"][b"fine_labels"]
