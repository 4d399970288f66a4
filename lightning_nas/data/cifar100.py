"""CIFAR-100 from the official python archive (``cifar-100-python/{train,test,meta}``), fine labels.

The layout NAS-Bench-201 trains on (Dong & Yang, ICLR 2020, Sec. 2.3): 50,000 training and 10,000
test images of 100 fine classes. Each file is a Python 2 pickle of a dictionary (``data``: N x 3072
uint8 rows, channel-major; ``fine_labels``; ``coarse_labels``), read through the allow-list unpickler.
Downloaded like CIFAR-10 when missing and allowed (MD5-checked, extracted atomically).
"""
from __future__ import annotations

from pathlib import Path

import torch

from lightning_nas.data.cifar10 import DatasetNotFoundError, fetch_and_extract, read_python_batch

URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
ARCHIVE_MD5 = "eb9058c3a382ffc7106e4002c42a8d85"
FOLDER = "cifar-100-python"
FILES = ("train", "test", "meta")
NUM_CLASSES = 100


def read_cifar100(data_dir: Path, download: bool = True, url: str = URL, md5: str = ARCHIVE_MD5):
    from lightning_nas.data.sources import ImageData

    folder = Path(data_dir) / FOLDER
    missing = [name for name in FILES if not (folder / name).is_file()]
    if missing:
        why = "download is off"
        if download:
            try:
                fetch_and_extract(Path(data_dir), url, md5, folder=FOLDER)
                missing = []
            except OSError as error:
                why = f"download failed: {error}"
        if missing:
            raise DatasetNotFoundError(f"CIFAR-100 not found in {folder} (missing {', '.join(missing)}; {why}). Put the "
                                       f"official python files there ({', '.join(FILES)}), or allow the download of {url}")
    train_x, train_y = _read(folder / "train")
    test_x, test_y = _read(folder / "test")
    return ImageData(train_x, train_y, test_x, test_y, num_classes=NUM_CLASSES)


def _read(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    return read_python_batch(path, b"fine_labels", NUM_CLASSES, "CIFAR-100 python file")
