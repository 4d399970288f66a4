"""CIFAR-100 from the official python archive (``cifar-100-python/{train,test,meta}``), fine labels.

The layout NAS-Bench-201 trains on (Dong & Yang, ICLR 2020, Sec. 2.3): 50,000 training and 10,000
test images of 100 fine classes. Each file is a Python 2 pickle of a dictionary (``data``: N x 3072
uint8 rows, channel-major; ``fine_labels``; ``coarse_labels``), read through the allow-list unpickler.
Downloaded like CIFAR-10 when missing and allowed (MD5-checked, extracted atomically).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lightning_nas import safe_pickle
from lightning_nas.data.cifar10 import DatasetNotFoundError, fetch_and_extract
from lightning_nas.errors import DatasetError

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
    entry = safe_pickle.load(path, encoding="bytes", what="CIFAR-100 python file")
    try:
        data = np.asarray(entry[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(entry[b"fine_labels"], dtype=np.int64)
    except (KeyError, ValueError, TypeError, IndexError) as error:  # a readable pickle of another layout
        raise DatasetError(f"{path} is not a CIFAR-100 python file ({error!r}; expected data and fine_labels)") from None
    if len(data) != len(labels):
        raise DatasetError(f"{path}: {len(data)} images but {len(labels)} labels")
    if labels.size and not (0 <= labels.min() and labels.max() < NUM_CLASSES):
        raise DatasetError(f"{path}: fine labels must lie in 0..{NUM_CLASSES - 1}, found {labels.min()}..{labels.max()}")
    return torch.from_numpy(data), torch.from_numpy(labels)
