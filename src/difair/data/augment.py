"""Training augmentation on uint8 image batches: contrast/brightness jitter, RandAugment(N, M), per-sample
pad+crop (or RandomResizedCrop, ``augment.crop=resized``: difair.data.resized_crop) and horizontal flip.

Each sample draws its own crop offset, flip and RandAugment ops. The jitter follows Keras' ``RandomContrast``
and ``RandomBrightness`` (the authors' MNIST augmentation), computed in float32 and rounded back to uint8.
``TorchvisionRandAugment`` applies torchvision's ``RandAugment`` image by image (the reference behaviour,
``backend="torchvision"``); ``backend="batched"`` uses ``difair.data.randaugment.BatchRandAugment`` (the same
ops, grouped into batched calls, on the images' device).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from difair.config import AugmentConfig
from difair.data.resized_crop import random_resized_crop

if TYPE_CHECKING:
    from difair.data.randaugment import BatchRandAugment


def adjust_contrast(images: Tensor, factors: Tensor) -> Tensor:
    """Keras/TF ``adjust_contrast``: ``(x - m) * f + m`` with ``m`` the mean of each image and channel, clipped
    to [0, 255]; ``factors`` holds one factor per image. Float32 out."""
    x = images.float()
    mean = x.mean(dim=(-2, -1), keepdim=True)
    f = factors.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)
    return ((x - mean) * f + mean).clamp_(0, 255)


def adjust_brightness(images: Tensor, deltas: Tensor) -> Tensor:
    """Keras ``RandomBrightness`` on the 0-255 range: add ``delta * 255`` per image, clip to [0, 255]. Float32 out."""
    d = deltas.to(device=images.device, dtype=torch.float32).view(-1, 1, 1, 1)
    return (images.float() + d * 255).clamp_(0, 255)


def random_jitter(
    images: Tensor,
    contrast: float,
    brightness: float,
    contrast_per: str = "sample",
    generator: torch.Generator | None = None,
) -> Tensor:
    """Contrast factor ``U[1-contrast, 1+contrast]`` (per sample, or one per batch as the authors' Keras layer),
    then brightness delta ``U[-brightness, brightness]`` per sample; uint8 in and out (rounded)."""
    if contrast <= 0 and brightness <= 0:
        return images
    b = images.shape[0]
    x = images.float()
    if contrast > 0:
        n = 1 if contrast_per == "batch" else b
        f = 1 + contrast * (2 * torch.rand(n, generator=generator) - 1)
        x = adjust_contrast(x, f.expand(b))
    if brightness > 0:
        x = adjust_brightness(x, brightness * (2 * torch.rand(b, generator=generator) - 1))
    return x.round_().to(torch.uint8)


def random_crop(images: Tensor, padding: int, generator: torch.Generator | None = None) -> Tensor:
    """Zero-pad by ``padding`` and crop back to the input size at a random offset drawn per sample."""
    if padding <= 0:
        return images
    b, c, h, w = images.shape
    padded = torch.nn.functional.pad(images, (padding, padding, padding, padding))
    oy = torch.randint(0, 2 * padding + 1, (b,), generator=generator).to(images.device)
    ox = torch.randint(0, 2 * padding + 1, (b,), generator=generator).to(images.device)
    iy = (oy[:, None] + torch.arange(h, device=images.device))[:, :, None]  # [B, H, 1]
    ix = (ox[:, None] + torch.arange(w, device=images.device))[:, None, :]  # [B, 1, W]
    bi = torch.arange(b, device=images.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[bi, iy, ix].permute(0, 3, 1, 2).contiguous()


def random_hflip(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Flip each sample left-right with probability 1/2."""
    flip = (torch.rand(images.shape[0], generator=generator) < 0.5).to(images.device)
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


class TorchvisionRandAugment:
    """torchvision's ``RandAugment(N, M)`` applied to each image of a batch in turn (per-sample ops)."""

    def __init__(self, num_ops: int, magnitude: int, geometric: bool = True):
        from torchvision.transforms import v2

        self.op = v2.RandAugment(num_ops=num_ops, magnitude=magnitude)
        if not geometric:  # SVHN in the authors' code: no rotation or translation
            # an instance copy: popping from the class attribute would change every RandAugment in the process
            space = dict(self.op._AUGMENTATION_SPACE)  # type: ignore[attr-defined]
            for name in ("Rotate", "TranslateX", "TranslateY"):
                space.pop(name, None)
            self.op._AUGMENTATION_SPACE = space  # type: ignore[attr-defined]

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        # torchvision draws from the global RNG; the engine seeds it per epoch, so runs stay reproducible.
        return torch.stack([self.op(img) for img in images])


class Augmenter:
    """The configured train-time augmentation: jitter, RandAugment, pad+crop or resized crop, flip (the authors'
    order). The resized crop keeps the input's size; its resampling is batched with ``backend=batched`` and
    torchvision's per-image ``resized_crop`` otherwise, on the same boxes."""

    def __init__(self, cfg: AugmentConfig):
        self.cfg = cfg
        self.randaugment: TorchvisionRandAugment | BatchRandAugment | None = None
        if cfg.randaugment_n > 0:
            geometric = cfg.randaugment_ops == "all"
            if cfg.backend == "batched":
                # start-up time: imports torchvision, only when used
                from difair.data.randaugment import BatchRandAugment

                self.randaugment = BatchRandAugment(cfg.randaugment_n, cfg.randaugment_m, geometric=geometric)
            else:
                self.randaugment = TorchvisionRandAugment(
                    cfg.randaugment_n, cfg.randaugment_m, geometric=geometric
                )

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        c = self.cfg
        images = random_jitter(images, c.contrast, c.brightness, c.contrast_per, generator)
        if self.randaugment is not None:
            images = self.randaugment(images, generator)
        if c.crop == "resized":
            batched = c.backend == "batched"
            images = random_resized_crop(images, c.crop_scale, c.crop_ratio, generator, batched=batched)
        else:
            images = random_crop(images, self.cfg.crop_padding, generator)
        if self.cfg.hflip:
            images = random_hflip(images, generator)
        return images
