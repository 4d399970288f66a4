"""CIFAR-10 from the official python archive (``cifar-10-batches-py``), without torchvision.

Looks in ``data_dir``; if the batches are missing and ``download`` is on, fetches the official
archive, checks its MD5 and extracts it atomically (into a temporary folder renamed into place),
so an interrupted download never leaves a half-extracted dataset behind.
"""
from __future__ import annotations

import hashlib
import shutil
import tarfile
import tempfile
import urllib.request
from pathlib import Path

import numpy as np
import torch

from lightning_nas import safe_pickle
from lightning_nas.errors import DatasetError

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)


class DatasetNotFoundError(DatasetError):
    """The CIFAR-10 archive or one of its batch files is missing or corrupt."""


def read_cifar10(data_dir: Path, download: bool = True, url: str = URL, md5: str = ARCHIVE_MD5):
    from lightning_nas.data.sources import ImageData

    folder = data_dir / FOLDER
    missing = [name for name in TRAIN_FILES + TEST_FILES if not (folder / name).is_file()]
    if missing:
        if not download:
            raise DatasetNotFoundError(_missing_message(folder, missing, "download is off"))
        try:
            fetch_and_extract(data_dir, url, md5)
        except OSError as error:
            raise DatasetNotFoundError(_missing_message(folder, missing, f"download failed: {error}")) from None
    train_x, train_y = _read_batches(folder, TRAIN_FILES)
    test_x, test_y = _read_batches(folder, TEST_FILES)
    return ImageData(train_x, train_y, test_x, test_y, num_classes=10)


def _missing_message(folder: Path, missing: list[str], why: str) -> str:
    return (f"CIFAR-10 not found in {folder} (missing {', '.join(missing)}; {why}). Put the official "
            f"python batches there ({', '.join(TRAIN_FILES + TEST_FILES)}), or allow the download of {URL}")


def _read_batches(folder: Path, names: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    parts = [read_python_batch(folder / name, b"labels", 10, "CIFAR-10 python batch") for name in names]
    return torch.cat([x for x, _ in parts]), torch.cat([y for _, y in parts])


def read_python_batch(path: Path, label_key: bytes, num_classes: int, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 3, 32, 32) uint8 and labels of one CIFAR python file (Python 2 pickle of ``data`` and
    ``label_key``: ``labels`` for CIFAR-10, ``fine_labels`` for CIFAR-100), read through the allow-list
    unpickler; a file of another layout, a count mismatch or a label outside 0..num_classes-1 is one
    error naming the file."""
    entry = safe_pickle.load(path, encoding="bytes", what=what)
    try:
        data = np.asarray(entry[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(entry[label_key], dtype=np.int64)
    except (KeyError, ValueError, TypeError, IndexError) as error:  # a readable pickle of another layout
        raise DatasetError(f"{path} is not a {what} ({error!r}; expected data and "
                           f"{label_key.decode()})") from None
    if len(data) != len(labels):
        raise DatasetError(f"{path}: {len(data)} images but {len(labels)} labels")
    if labels.size and not (0 <= labels.min() and labels.max() < num_classes):
        raise DatasetError(f"{path}: {label_key.decode()} must lie in 0..{num_classes - 1}, "
                           f"found {labels.min()}..{labels.max()}")
    return torch.from_numpy(data), torch.from_numpy(labels)


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_and_extract(data_dir: Path, url: str = URL, md5: str = ARCHIVE_MD5, folder: str = FOLDER) -> Path:
    """Download ``url`` (``file://`` works too), verify ``md5``, extract its ``folder`` atomically into ``data_dir``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=data_dir, prefix=".cifar10-") as tmp:
        archive = Path(tmp) / url.rsplit("/", 1)[-1]
        with urllib.request.urlopen(url, timeout=60) as response, archive.open("wb") as out:
            shutil.copyfileobj(response, out)
        actual = md5sum(archive)
        if actual != md5:
            raise OSError(f"checksum mismatch for {url}: MD5 {actual}, expected {md5}")
        staging = Path(tmp) / "extracted"
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(staging, filter="data")
        target = data_dir / folder
        if target.exists():
            shutil.rmtree(target)
        (staging / folder).rename(target)
    return target
