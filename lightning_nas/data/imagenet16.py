"""ImageNet16-120: the NAS-Bench-201 authors' 16x16 downsampled ImageNet, first 120 classes.

Dong & Yang (ICLR 2020, Sec. 2.3) build ImageNet16-120 from the 16x16 variant of downsampled
ImageNet (Chrabaszcz et al., 2017), keeping the images whose label is one of the first 120 classes:
151,700 training and 6,000 validation images. The files (folder ``ImageNet16``) are pickled
dictionaries, ``train_data_batch_1`` .. ``train_data_batch_10`` and ``val_data``, each with
``data`` (N x 768 uint8 rows, channel-major 3x16x16) and ``labels`` (1-based classes 1..1000). Labels
<= ``num_classes`` are kept and shifted to 0-based. Each batch is filtered as it is read, so at most
one full batch is held beside the kept images. There is no download: the files come from the
benchmark's page.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lightning_nas import safe_pickle
from lightning_nas.errors import DatasetError

FOLDER = "ImageNet16"
TRAIN_FILES = tuple(f"train_data_batch_{i}" for i in range(1, 11))
TEST_FILES = ("val_data",)
NUM_CLASSES = 120  # NAS-Bench-201's subset


def read_imagenet16(data_dir: Path, num_classes: int = NUM_CLASSES):
    from lightning_nas.data.sources import ImageData

    folder = Path(data_dir) / FOLDER
    missing = [name for name in TRAIN_FILES + TEST_FILES if not (folder / name).is_file()]
    if missing:
        raise DatasetError(f"ImageNet16-120 not found in {folder} (missing {', '.join(missing)}). Put the NAS-Bench-201 "
                           f"authors' 16x16 ImageNet pickles there ({TRAIN_FILES[0]} .. {TRAIN_FILES[-1]}, val_data)")
    train_x, train_y = _read(folder, TRAIN_FILES, num_classes)
    test_x, test_y = _read(folder, TEST_FILES, num_classes)
    return ImageData(train_x, train_y, test_x, test_y, num_classes=num_classes)


def _field(entry: dict, name: str):
    return entry[name] if name in entry else entry[name.encode()]


def _read(folder: Path, names: tuple[str, ...], num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = [], []
    for name in names:
        path = folder / name
        entry = safe_pickle.load(path, encoding="latin1", what="ImageNet16 pickle")
        try:
            data = np.asarray(_field(entry, "data"), dtype=np.uint8).reshape(-1, 3, 16, 16)
            target = np.asarray(_field(entry, "labels"), dtype=np.int64).reshape(-1)
        except (KeyError, ValueError, TypeError, IndexError) as error:
            raise DatasetError(f"{path} is not an ImageNet16 pickle ({error!r}; expected data and labels)") from None
        if len(data) != len(target):
            raise DatasetError(f"{path}: {len(data)} images but {len(target)} labels")
        if target.size and target.min() < 1:
            raise DatasetError(f"{path}: labels are 1-based in ImageNet16, found {target.min()}")
        keep = target <= num_classes
        images.append(torch.from_numpy(np.ascontiguousarray(data[keep])))
        labels.append(torch.from_numpy(target[keep] - 1))
    return torch.cat(images), torch.cat(labels)
