"""LightningDataModules handing out seeded, deterministic batches."""
from lightning_nas.data.augment import Augmentation
from lightning_nas.data.images import ImageDataModule
from lightning_nas.data.ptb import PTBDataModule
from lightning_nas.data.sources import IMAGE_SOURCES, ImageData

__all__ = ["Augmentation", "IMAGE_SOURCES", "ImageData", "ImageDataModule", "PTBDataModule"]
