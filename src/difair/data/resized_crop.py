"""RandomResizedCrop on uint8 batches ``[B, C, H, W]``: per-sample boxes, resized back to the input size.

``sample_boxes`` draws each sample's box exactly as ``torchvision.transforms.RandomResizedCrop.get_params`` does
(area fraction ~ U(scale), log aspect ratio ~ U(log ratio), up to 10 attempts, then the centre-crop fallback),
from a CPU ``generator`` in the same order, so a seeded generator gives torchvision's boxes sample after sample
(tests/test_fullres.py). ``resized_crop`` resamples every box in two batched matrix products: the separable
weights of PyTorch's antialiased bilinear resize (``interpolate(..., antialias=True)``, which torchvision's
``resized_crop`` calls), one weight matrix per sample and axis, zero outside the box. ``resized_crop_reference``
is torchvision's per-image ``resized_crop`` on the same boxes (``augment.backend=torchvision``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

ATTEMPTS = 10  # torchvision's attempts before the centre-crop fallback


def sample_box(
    height: int, width: int, scale: Sequence[float], ratio: Sequence[float], generator: torch.Generator | None
) -> tuple[int, int, int, int]:
    """One box ``(top, left, h, w)``: torchvision's ``RandomResizedCrop.get_params``, drawing from ``generator``."""
    area = height * width
    log_ratio = torch.log(torch.tensor(ratio))
    for _ in range(ATTEMPTS):
        target_area = area * torch.empty(1).uniform_(scale[0], scale[1], generator=generator).item()
        aspect = math.exp(
            torch.empty(1).uniform_(float(log_ratio[0]), float(log_ratio[1]), generator=generator).item()
        )
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, size=(1,), generator=generator).item())
            left = int(torch.randint(0, width - w + 1, size=(1,), generator=generator).item())
            return top, left, h, w
    in_ratio = float(width) / float(height)  # the fallback: the largest centred box within the ratio range
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def sample_boxes(
    n: int,
    height: int,
    width: int,
    scale: Sequence[float] = (0.08, 1.0),
    ratio: Sequence[float] = (3 / 4, 4 / 3),
    generator: torch.Generator | None = None,
) -> Tensor:
    """``n`` boxes int64 ``[n, 4]`` (top, left, h, w), sample by sample in torchvision's draw order."""
    return torch.tensor(
        [sample_box(height, width, scale, ratio, generator) for _ in range(n)], dtype=torch.int64
    ).view(n, 4)


def _aa_weights(starts: Tensor, sizes: Tensor, out_size: int, in_size: int) -> Tensor:
    """Per-sample weights ``[B, out_size, in_size]`` of PyTorch's antialiased bilinear resize of the window
    ``[start, start + size)`` of an axis of length ``in_size`` to ``out_size`` (zero outside the window).

    Mirrors ``_compute_indices_min_size_weights_aa`` of ATen's UpSampleKernel: scale = size / out, support =
    max(scale, 1), triangle filter stretched by the scale when downsampling, each row normalised to sum 1.
    """
    size = sizes.to(torch.float32)[:, None, None]  # [B, 1, 1]
    scale = size / out_size
    support = scale.clamp(min=1.0)
    invscale = torch.where(scale >= 1.0, 1.0 / scale, torch.ones_like(scale))
    center = scale * (torch.arange(out_size, dtype=torch.float32)[None, :, None] + 0.5)  # [B, O, 1]
    xmin = (center - support + 0.5).trunc().clamp(min=0)
    xmax = torch.minimum((center + support + 0.5).trunc(), size)
    j = torch.arange(in_size, dtype=torch.float32)[None, None, :] - starts.to(torch.float32)[:, None, None]
    w = (1.0 - ((j - center + 0.5) * invscale).abs()).clamp(min=0)
    w = torch.where((j >= xmin) & (j < xmax), w, torch.zeros_like(w))
    return (w / w.sum(-1, keepdim=True).clamp(min=1e-12)).float()


def resized_crop(images: Tensor, boxes: Tensor, size: int) -> Tensor:
    """Each image's box ``(top, left, h, w)`` resized to ``size x size`` (antialiased bilinear), uint8 out."""
    b, c, h, w = images.shape
    boxes = boxes.to(torch.int64).cpu()
    wy = _aa_weights(boxes[:, 0], boxes[:, 2], size, h).to(images.device)  # [B, S, H]
    wx = _aa_weights(boxes[:, 1], boxes[:, 3], size, w).to(images.device)  # [B, S, W]
    x = images.float()
    rows = torch.matmul(x, wx.transpose(1, 2)[:, None])  # [B, C, H, S]
    out = torch.matmul(wy[:, None], rows)  # [B, C, S, S]
    return out.round_().clamp_(0, 255).to(torch.uint8)


def resized_crop_reference(images: Tensor, boxes: Tensor, size: int) -> Tensor:
    """torchvision's ``resized_crop`` (bilinear, antialias) image by image on the same boxes."""
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as F

    out = [
        F.resized_crop(
            img, int(t), int(left), int(hh), int(ww), [size, size], InterpolationMode.BILINEAR, antialias=True
        )
        for img, (t, left, hh, ww) in zip(images, boxes.tolist(), strict=True)
    ]
    return torch.stack(out) if out else images[:, :, :size, :size]


def random_resized_crop(
    images: Tensor,
    scale: Sequence[float] = (0.08, 1.0),
    ratio: Sequence[float] = (3 / 4, 4 / 3),
    generator: torch.Generator | None = None,
    *,
    batched: bool = True,
) -> Tensor:
    """RandomResizedCrop of every sample to the input's size, boxes drawn per sample from ``generator``."""
    b, _, h, w = images.shape
    if b == 0:
        return images
    boxes = sample_boxes(b, h, w, scale, ratio, generator)
    return (resized_crop if batched else resized_crop_reference)(images, boxes, h)
