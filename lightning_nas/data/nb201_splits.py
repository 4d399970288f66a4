"""NAS-Bench-201's official data splits, read from the authors' split files.

Dong & Yang (ICLR 2020, Sec. 2.3) fix the splits every benchmark number refers to, and publish them
as index lists (AutoDL-Projects, ``configs/nas-benchmark/``):

- ``cifar-split.txt``: ``train`` and ``valid``, two halves (25,000 each) of CIFAR-10's 50,000 training
  images: the ``cifar10-valid`` protocol trains on the first and validates on the second;
- ``cifar100-test-split.txt`` and ``imagenet-16-120-test-split.txt``: ``xvalid`` and ``xtest``, two
  halves of the test set (5,000 + 5,000 for CIFAR-100, 3,000 + 3,000 for ImageNet16-120): models train
  on the whole training set, ``x-valid`` and ``x-test`` are measured on the halves.

A file is a JSON object whose values are ``["int", ["0", "5", ...]]`` (type tag, then the indices as
strings); plain lists of integers are accepted too. A missing or malformed file is one line naming it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from lightning_nas.errors import DatasetError

#: the two kinds of split file: (held-in key, held-out key, which images they index)
KINDS = {("train", "valid"): "train", ("xvalid", "xtest"): "test"}


@dataclass(frozen=True)
class OfficialSplit:
    """Index lists of one split file. ``of`` is ``train`` (``kept`` trains, ``held_out`` validates) or
    ``test`` (``kept`` = x-valid, ``held_out`` = x-test, both halves of the test images)."""

    path: Path
    of: str
    kept: torch.Tensor
    held_out: torch.Tensor

    def check_size(self, count: int) -> None:
        """Every index must address one of the ``count`` images the split applies to."""
        top = int(max(self.kept.max(), self.held_out.max()))
        if top >= count:
            raise DatasetError(f"{self.path} indexes {self.of} image {top}, but the dataset has {count} {self.of} "
                               "images: is it the split file of this dataset?")


def _indices(path: Path, key: str, value: object) -> torch.Tensor:
    if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], list):
        value = value[1] if value[0] == "int" else None
    try:
        if not isinstance(value, list) or not value:
            raise TypeError("not a non-empty list")
        numbers = [int(v) for v in value]
    except (TypeError, ValueError) as error:
        raise DatasetError(f"{path}: {key!r} must list image indices (as [\"int\", [\"0\", ...]]): {error}") from None
    if min(numbers) < 0 or len(set(numbers)) != len(numbers):
        raise DatasetError(f"{path}: {key!r} holds negative or repeated indices")
    return torch.tensor(numbers, dtype=torch.int64)


def read_split(path: str | Path) -> OfficialSplit:
    """The split file at ``path`` (``cifar-split.txt``, ``cifar100-test-split.txt`` or
    ``imagenet-16-120-test-split.txt``)."""
    path = Path(path).expanduser()
    expected = ("an NAS-Bench-201 split file (cifar-split.txt with train/valid, or cifar100-test-split.txt / "
                "imagenet-16-120-test-split.txt with xvalid/xtest)")
    if not path.is_file():
        raise DatasetError(f"data.split_file: {path} does not exist: expected {expected}")
    try:
        content = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path} is not readable JSON ({error}; truncated?): expected {expected}") from None
    if isinstance(content, dict):
        for (kept, held_out), of in KINDS.items():
            if kept in content and held_out in content:
                first, second = _indices(path, kept, content[kept]), _indices(path, held_out, content[held_out])
                if set(first.tolist()) & set(second.tolist()):
                    raise DatasetError(f"{path}: {kept!r} and {held_out!r} share indices; the halves must be disjoint")
                return OfficialSplit(path, of, first, second)
    keys = ", ".join(map(str, content)) if isinstance(content, dict) else type(content).__name__
    raise DatasetError(f"{path} holds {keys}, not train/valid or xvalid/xtest: expected {expected}")
