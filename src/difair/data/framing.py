"""How images are framed for a model: resized to ``floor(size / crop_pct)`` and centre-cropped to ``size`` (the
evaluation framing of a pretrained backbone; a plain resize when ``crop_pct`` is None or 1), alike for training,
test, ``difair predict``, explanations and exports."""

from __future__ import annotations

import math

import torch
from torch import Tensor

# float values per resize chunk (128 MB): a whole dataset is never float at once
RESIZE_CHUNK_VALUES = 1 << 25


def resize_size(size: int, crop_pct: float | None) -> int:
    """The side images are resized to before a centre crop of ``size`` (``floor(size / crop_pct)``, as timm)."""
    return size if crop_pct is None or crop_pct >= 1 else int(math.floor(size / crop_pct))


def resize_crop_uint8(images: Tensor, size: int, crop_pct: float | None = None) -> Tensor:
    """Resize uint8 images to ``resize_size(size, crop_pct)``, then centre-crop ``size x size`` (the evaluation
    framing of a pretrained backbone's config; ``crop_pct`` None or 1: a plain resize to ``size``).

    Done in chunks of images, so neither a float copy nor the uncropped resize of the whole set is ever held.
    """
    side = resize_size(size, crop_pct)
    n, c, h, w = images.shape
    if (h, w) == (side, side):
        return center_crop(images, size)
    out = torch.empty((n, c, size, size), dtype=torch.uint8)
    step = max(1, RESIZE_CHUNK_VALUES // (c * max(h * w, side * side)))
    for i in range(0, n, step):
        part = torch.nn.functional.interpolate(
            images[i : i + step].float(),
            size=(side, side),
            mode="bilinear",
            align_corners=False,
            antialias=True,
        )
        out[i : i + step] = center_crop(part.round_().clamp_(0, 255), size)
    return out


def crop_offsets(h: int, w: int, size: int) -> tuple[int, int]:
    """Top and left of the central ``size x size`` window of an ``h x w`` image (torchvision's rounding)."""
    return int(round((h - size) / 2.0)), int(round((w - size) / 2.0))


def crop_window(size: int, crop_pct: float | None) -> tuple[float, float, float, float]:
    """The part of an image a run's framing keeps (resize to ``resize_size``, centre crop ``size``), as fractions
    of its width and height: ``(left, top, right, bottom)``; the whole image when ``crop_pct`` is None or 1."""
    side = resize_size(size, crop_pct)
    top, left = crop_offsets(side, side, size)
    return left / side, top / side, (left + size) / side, (top + size) / side


def center_crop(images: Tensor, size: int) -> Tensor:
    """The central ``size x size`` window of images ``[..., H, W]`` (torchvision's rounding); a no-op at that size."""
    h, w = images.shape[-2:]
    if (h, w) == (size, size):
        return images
    top, left = crop_offsets(h, w, size)
    return images[..., top : top + size, left : left + size].contiguous()
