"""Batched image augmentation on the training device, every random number from one generator.

Replaces per-image PIL transforms: a whole uint8 batch is padded, cropped, flipped and cut out
with a handful of tensor ops, and the result is a pure function of (images, generator state).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Augmentation:
    """Random crop with zero padding, horizontal flip, optional cutout (DeVries & Taylor 2017)."""

    crop_padding: int = 4
    horizontal_flip: bool = True
    cutout: int = 0  # side of the square cut out, 0 = off
    #: each image is cut out with this probability (NAS-Bench-1Shot1's "CO prob", App. F); at 1 every image
    #: is, and no further random number is drawn (runs without it stay bit-identical)
    cutout_prob: float = 1.0

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        x = images
        n, _, h, w = x.shape
        device = x.device
        if self.crop_padding > 0:
            p = self.crop_padding
            padded = F.pad(x, (p, p, p, p))
            dy = torch.randint(0, 2 * p + 1, (n,), generator=generator, device=device)
            dx = torch.randint(0, 2 * p + 1, (n,), generator=generator, device=device)
            rows = (dy[:, None] + torch.arange(h, device=device)[None, :])  # (n, h)
            cols = (dx[:, None] + torch.arange(w, device=device)[None, :])  # (n, w)
            batch_index = torch.arange(n, device=device)[:, None, None]
            # gather the crop window of every image at once: (n, h, w, c) -> (n, c, h, w)
            x = padded.permute(0, 2, 3, 1)[batch_index, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
        if self.horizontal_flip:
            flip = torch.rand(n, generator=generator, device=device) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        if self.cutout > 0:
            cy = torch.randint(0, h, (n,), generator=generator, device=device)
            cx = torch.randint(0, w, (n,), generator=generator, device=device)
            half = self.cutout // 2
            ys = torch.arange(h, device=device)[None, :]
            xs = torch.arange(w, device=device)[None, :]
            in_y = ((ys >= (cy[:, None] - half)) & (ys < (cy[:, None] - half + self.cutout)))
            in_x = ((xs >= (cx[:, None] - half)) & (xs < (cx[:, None] - half + self.cutout)))
            mask = in_y[:, None, :, None] & in_x[:, None, None, :]
            if self.cutout_prob < 1.0:
                chosen = torch.rand(n, generator=generator, device=device) < self.cutout_prob
                mask = mask & chosen[:, None, None, None]
            x = x.masked_fill(mask, 0)
        return x.contiguous()


def normalize(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float normalised per channel; ``mean``/``std`` are on the 0..1 scale."""
    x = images.float().div_(255.0)
    return (x - mean.to(x.device)[None, :, None, None]) / std.to(x.device)[None, :, None, None]
