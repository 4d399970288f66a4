"""Image datasets as uint8 tensors in memory, by short name.

Each source returns an ``ImageData``: training and official test images (N, C, H, W) uint8, labels
int64, per-channel mean/std. A new dataset is one decorated function.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from lightning_nas.registry import Registry
from lightning_nas.errors import RecipeError


@dataclass(frozen=True)
class ImageData:
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    num_classes: int

    @property
    def in_channels(self) -> int:
        return int(self.train_images.shape[1])

    def channel_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel mean and std (0..1 scale) of the training images."""
        x = self.train_images.float().div(255.0)
        return x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3))


IMAGE_SOURCES: Registry = Registry("image dataset")


@IMAGE_SOURCES.register("digits")
def load_digits(data_dir: str | Path | None = None, image_size: int = 16, download: bool = False) -> ImageData:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images, no download), upsampled.

    The official split does not exist; a fixed 1/5 of the images (every fifth, so classes stay
    balanced) is held out as the test set, independent of the run seed.
    """
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    images = torch.as_tensor(bunch.images, dtype=torch.float32)[:, None] * (255.0 / 16.0)
    if image_size != 8:
        images = F.interpolate(images, size=(image_size, image_size), mode="bilinear", align_corners=False)
    images = images.round().clamp(0, 255).to(torch.uint8)
    labels = torch.as_tensor(bunch.target, dtype=torch.int64)
    test = torch.arange(len(labels)) % 5 == 4
    return ImageData(images[~test], labels[~test], images[test], labels[test], num_classes=10)


@IMAGE_SOURCES.register("digits_noisy")
def load_digits_noisy(data_dir: str | Path | None = None, image_size: int = 8, download: bool = False,
                      noise: float = 0.2, shift: int = 1, test_copies: int = 3) -> ImageData:
    """``digits`` made hard enough to rank architectures (the ground truth of ``tabulate``).

    On clean digits nearly every NB201 cell reaches 97-99%, so stand-alone rankings are mostly seed
    noise. Every image here gets one fixed random translation (up to ``shift`` pixels, zero fill) and
    Gaussian pixel noise (std ``noise`` x 255); labels are unchanged. Each test image appears
    ``test_copies`` times with independent distortions, which averages the evaluation over the noise.
    The distortions come from a fixed generator, so the dataset is the same for every run seed.
    """
    from lightning_nas.seeding import generator

    clean = load_digits(image_size=image_size)

    def distort(images: torch.Tensor, part: str) -> torch.Tensor:
        gen = generator(0, "digits_noisy", part)
        n, _, h, w = images.shape
        padded = F.pad(images.float(), (shift,) * 4)
        dy = torch.randint(0, 2 * shift + 1, (n,), generator=gen)
        dx = torch.randint(0, 2 * shift + 1, (n,), generator=gen)
        moved = torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])
        return (moved + noise * 255 * torch.randn(moved.shape, generator=gen)).round().clamp(0, 255).to(torch.uint8)

    test = torch.cat([distort(clean.test_images, f"test{c}") for c in range(test_copies)])
    return ImageData(distort(clean.train_images, "train"), clean.train_labels, test,
                     clean.test_labels.repeat(test_copies), num_classes=10)


@IMAGE_SOURCES.register("cifar10")
def load_cifar10(data_dir: str | Path = "data", image_size: int = 32, download: bool = True) -> ImageData:
    from lightning_nas.data.cifar10 import read_cifar10

    if image_size != 32:
        raise RecipeError(f"data.image_size: CIFAR-10 images are 32x32, got {image_size}")
    return read_cifar10(Path(data_dir), download=download)


@IMAGE_SOURCES.register("cifar100")
def load_cifar100(data_dir: str | Path = "data", image_size: int = 32, download: bool = True) -> ImageData:
    """CIFAR-100, fine labels (``cifar-100-python`` in ``data_dir``; NAS-Bench-201's second data set)."""
    from lightning_nas.data.cifar100 import read_cifar100

    if image_size != 32:
        raise RecipeError(f"data.image_size: CIFAR-100 images are 32x32, got {image_size}")
    return read_cifar100(Path(data_dir), download=download)


@IMAGE_SOURCES.register("imagenet16-120")
def load_imagenet16_120(data_dir: str | Path = "data", image_size: int = 16, download: bool = False) -> ImageData:
    """ImageNet16-120 (``ImageNet16`` in ``data_dir``; NAS-Bench-201's third data set). Never downloaded."""
    from lightning_nas.data.imagenet16 import read_imagenet16

    if image_size != 16:
        raise RecipeError(f"data.image_size: ImageNet16-120 images are 16x16, got {image_size}")
    return read_imagenet16(Path(data_dir))
