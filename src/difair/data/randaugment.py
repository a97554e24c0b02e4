"""Batched RandAugment(N, M) on uint8 tensors [B, C, H, W], with per-sample ops, on the images' device.

Semantics follow ``torchvision.transforms.v2.RandAugment``: the same 14-op space, magnitude tables and signed
magnitudes, ``num_ops`` ops chosen uniformly with replacement and applied in sequence, nearest-neighbour
geometry. The difference is that every sample draws its own ops and signs. For a given M the magnitude of
each op is fixed and only its sign is random, so a round has at most 24 distinct (op, sign) groups: the
samples are sorted by group and each group goes through the torchvision functional op in one batched call.
Identity and the geometric ops (shear, translate, rotate; nearest-neighbour) only move pixels, so they are
done together as one per-sample gather, with index maps made by torchvision's own ops. The output equals
torchvision's ops applied image by image with the same ops and signs, exactly (tests/test_randaugment.py).

Random numbers come from a CPU ``generator`` (``sample_ops``); ``apply`` is deterministic given the draws.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as F

__all__ = ["BatchRandAugment", "OP_NAMES", "GEOMETRIC_OPS"]

# name -> (magnitudes(num_bins, height, width) or None, signed): order and tables of torchvision's RandAugment
_SPACE: dict[str, tuple[Callable[[int, int, int], Tensor | None], bool]] = {
    "Identity": (lambda n, h, w: None, False),
    "ShearX": (lambda n, h, w: torch.linspace(0.0, 0.3, n), True),
    "ShearY": (lambda n, h, w: torch.linspace(0.0, 0.3, n), True),
    "TranslateX": (lambda n, h, w: torch.linspace(0.0, 150.0 / 331.0 * w, n), True),
    "TranslateY": (lambda n, h, w: torch.linspace(0.0, 150.0 / 331.0 * h, n), True),
    "Rotate": (lambda n, h, w: torch.linspace(0.0, 30.0, n), True),
    "Brightness": (lambda n, h, w: torch.linspace(0.0, 0.9, n), True),
    "Color": (lambda n, h, w: torch.linspace(0.0, 0.9, n), True),
    "Contrast": (lambda n, h, w: torch.linspace(0.0, 0.9, n), True),
    "Sharpness": (lambda n, h, w: torch.linspace(0.0, 0.9, n), True),
    "Posterize": (lambda n, h, w: (8 - (torch.arange(n) / ((n - 1) / 4))).round().int(), False),
    "Solarize": (lambda n, h, w: torch.linspace(1.0, 0.0, n), False),
    "AutoContrast": (lambda n, h, w: None, False),
    "Equalize": (lambda n, h, w: None, False),
}
OP_NAMES: tuple[str, ...] = tuple(_SPACE)
GEOMETRIC_OPS: tuple[str, ...] = ("TranslateX", "TranslateY", "Rotate")  # dropped by geometric=False
_GATHER_OPS = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")  # nearest-neighbour: pure gathers
_NEAREST = InterpolationMode.NEAREST


def apply_op(images: Tensor, name: str, magnitude: float, fill: list[float] | None = None) -> Tensor:
    """One RandAugment op with a signed ``magnitude`` on a batch, as torchvision's ``RandAugment`` does it."""
    if name == "Identity":
        return images
    if name in ("ShearX", "ShearY"):
        shear = math.degrees(math.atan(magnitude))
        return F.affine(
            images,
            angle=0.0,
            translate=[0, 0],
            scale=1.0,
            shear=[shear, 0.0] if name == "ShearX" else [0.0, shear],
            interpolation=_NEAREST,
            fill=fill,
            center=[0, 0],
        )
    if name in ("TranslateX", "TranslateY"):
        shift = int(magnitude)
        return F.affine(
            images,
            angle=0.0,
            translate=[shift, 0] if name == "TranslateX" else [0, shift],
            scale=1.0,
            interpolation=_NEAREST,
            shear=[0.0, 0.0],
            fill=fill,
        )
    if name == "Rotate":
        return F.rotate(images, angle=magnitude, interpolation=_NEAREST, fill=fill)
    if name == "Brightness":
        return F.adjust_brightness(images, brightness_factor=1.0 + magnitude)
    if name == "Color":
        return F.adjust_saturation(images, saturation_factor=1.0 + magnitude)
    if name == "Contrast":
        return F.adjust_contrast(images, contrast_factor=1.0 + magnitude)
    if name == "Sharpness":
        return F.adjust_sharpness(images, sharpness_factor=1.0 + magnitude)
    if name == "Posterize":
        return F.posterize(images, bits=int(magnitude))
    if name == "Solarize":
        return F.solarize(images, threshold=255.0 * magnitude)
    if name == "AutoContrast":
        return F.autocontrast(images)
    if name == "Equalize":
        return F.equalize(images)
    raise ValueError(f"unknown RandAugment op {name!r}; known: {', '.join(OP_NAMES)}")


class BatchRandAugment:
    """RandAugment(N, M) on a uint8 batch [B, C, H, W] (C = 1 or 3) with independent ops and signs per sample.

    ``ops`` lists the op names in use (indices in ``sample_ops``/``apply``/``last_ops`` refer to it);
    ``geometric=False`` drops TranslateX, TranslateY and Rotate (the DIFAIR authors' SVHN setting).
    """

    def __init__(
        self,
        num_ops: int,
        magnitude: int,
        num_magnitude_bins: int = 31,
        fill: float | Sequence[float] | None = 0,
        geometric: bool = True,
    ):
        if not isinstance(num_ops, int) or num_ops < 0:
            raise ValueError(f"num_ops must be a non-negative integer, got {num_ops!r}")
        if num_magnitude_bins < 2 or not 0 <= magnitude < num_magnitude_bins:
            raise ValueError(f"magnitude must be in [0, {num_magnitude_bins - 1}], got {magnitude!r}")
        self.num_ops = num_ops
        self.magnitude = magnitude
        self.num_magnitude_bins = num_magnitude_bins
        # torchvision's _convert_fill_arg: a number becomes a one-element list, None stays None.
        if fill is None:
            self.fill: list[float] | None = None
        elif isinstance(fill, (int, float)):
            self.fill = [float(fill)]
        else:
            self.fill = [float(v) for v in fill]
        self.geometric = geometric
        self.ops: tuple[str, ...] = tuple(n for n in OP_NAMES if geometric or n not in GEOMETRIC_OPS)
        self._signed = torch.tensor([_SPACE[n][1] for n in self.ops])
        self.last_ops: tuple[Tensor, Tensor] | None = None  # (ops, signs) of the latest __call__
        # Identity and the geometric ops lead self.ops: they are applied as pixel gathers
        self._num_gather = sum(1 for n in self.ops if n == "Identity" or n in _GATHER_OPS)
        assert all(n == "Identity" or n in _GATHER_OPS for n in self.ops[: self._num_gather])
        self._magnitudes: dict[tuple[int, int], list[float]] = {}
        self._maps: dict[tuple[int, int, str], Tensor] = {}
        self._fills: dict[tuple[int, str], Tensor] = {}

    def __repr__(self) -> str:
        return (
            f"BatchRandAugment(num_ops={self.num_ops}, magnitude={self.magnitude}, "
            f"num_magnitude_bins={self.num_magnitude_bins}, fill={self.fill}, geometric={self.geometric})"
        )

    def magnitudes(self, height: int, width: int) -> list[float]:
        """Unsigned magnitude of each op in ``self.ops`` for this image size (0.0 for parameterless ops)."""
        key = (height, width)
        if key not in self._magnitudes:
            out = []
            for name in self.ops:
                table = _SPACE[name][0](self.num_magnitude_bins, height, width)
                out.append(0.0 if table is None else float(table[self.magnitude]))
            self._magnitudes[key] = out
        return self._magnitudes[key]

    def sample_ops(self, batch_size: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Draw per-sample ops and signs on the CPU: int64 op indices and int8 signs (+1/-1), both [N, B].

        As in torchvision, a signed op is negated with probability 1/2 (``rand <= 0.5``); unsigned ops get +1.
        """
        ops = torch.randint(len(self.ops), (self.num_ops, batch_size), generator=generator)
        negative = torch.rand((self.num_ops, batch_size), generator=generator) <= 0.5
        negative &= self._signed[ops]
        signs = torch.where(negative, -1, 1).to(torch.int8)
        return ops, signs

    def _pixel_maps(self, height: int, width: int, device: torch.device) -> Tensor:
        """Source pixel of every output pixel for Identity and the geometric ops: int64 [2 * G, H * W].

        Row ``2 * op + negated`` holds, for each output pixel, the flat index of the input pixel that
        nearest-neighbour sampling copies, or ``H * W`` where the fill value goes. It is found by running
        torchvision's own op on a float32 image of pixel indices (float32 input gets the same float32 grid as
        uint8 input, and nearest sampling copies values exactly), so a gather with these maps equals the op.
        """
        key = (height, width, str(device))
        if key not in self._maps:
            hw = height * width
            index_image = torch.arange(1, hw + 1, dtype=torch.float32, device=device).view(
                1, 1, height, width
            )
            mags = self.magnitudes(height, width)
            rows = []
            for k in range(2 * self._num_gather):
                mag = -mags[k // 2] if k % 2 else mags[k // 2]
                src = apply_op(index_image, self.ops[k // 2], mag, fill=None).round().long().view(hw) - 1
                rows.append(torch.where(src < 0, hw, src))  # zero padding (0 - 1) -> the fill slot
            self._maps[key] = torch.stack(rows)
        return self._maps[key]

    def apply(self, images: Tensor, ops: Tensor, signs: Tensor) -> Tensor:
        """Apply the drawn ``ops`` and ``signs`` ([N, B], from ``sample_ops``) to ``images`` round by round.

        Per round the samples are sorted by (op, sign); Identity and the geometric ops are done together with
        one per-sample gather, every other (op, sign) group with one call of its torchvision functional op.
        """
        _check_images(images)
        b, c, h, w = images.shape
        ops, signs = ops.cpu().long(), signs.cpu()
        if ops.shape != signs.shape or ops.ndim != 2 or ops.shape[1] != b:
            raise ValueError(
                f"ops and signs must both be [num_ops, {b}], got {list(ops.shape)}, {list(signs.shape)}"
            )
        if ops.numel() and not 0 <= int(ops.min()) <= int(ops.max()) < len(self.ops):
            raise ValueError(f"op indices must be in [0, {len(self.ops) - 1}]")
        mags = self.magnitudes(h, w)
        num_keys = 2 * len(self.ops)
        num_gather_keys = 2 * self._num_gather
        # Plan every round on the CPU (group key 2 * op + negated; unsigned ops always use the + group), then
        # send the index tensors to the device in one transfer, so the loop below never waits for the device.
        keys = 2 * ops + ((signs < 0) & self._signed[ops]).long()  # [N, B]
        orders = torch.argsort(keys, dim=1, stable=True)
        inverses = torch.argsort(orders, dim=1)
        sorted_keys = keys.gather(1, orders)
        counts = [torch.bincount(k, minlength=num_keys).tolist() for k in keys]
        plan = torch.stack([orders, inverses, sorted_keys], dim=1)  # [N, 3, B]
        if images.device.type == "cuda":
            plan = plan.pin_memory()
        plan = plan.to(images.device, non_blocking=True)
        for r in range(ops.shape[0]):
            if counts[r][0] == b:  # everything Identity
                continue
            order, inverse, sorted_key = plan[r]
            grouped = images.index_select(0, order)
            pieces = []
            start = sum(counts[r][:num_gather_keys])
            if start > 0:  # Identity and geometric ops (keys sorted first): one gather over the pixels
                sel = self._pixel_maps(h, w, images.device).index_select(0, sorted_key[:start])
                flat = grouped[:start].reshape(start, c, h * w)
                flat = torch.cat([flat, self._fill_column(c, images.device).expand(start, c, 1)], dim=2)
                pieces.append(flat.gather(2, sel[:, None, :].expand(start, c, h * w)).view(start, c, h, w))
            for k in range(num_gather_keys, num_keys):
                n = counts[r][k]
                if n == 0:
                    continue
                mag = -mags[k // 2] if k % 2 else mags[k // 2]
                pieces.append(apply_op(grouped[start : start + n], self.ops[k // 2], mag, self.fill))
                start += n
            # undo the sort (index_select with the inverse permutation is much faster than index_copy_)
            images = torch.cat(pieces).index_select(0, inverse)
        return images

    def _fill_column(self, channels: int, device: torch.device) -> Tensor:
        """The fill value as uint8 [1, C, 1] (0 for fill=None, as torchvision's zero padding)."""
        key = (channels, str(device))
        if key not in self._fills:
            fill = self.fill or [0.0]
            values = fill * channels if len(fill) == 1 else fill
            # torchvision rounds the filled float image before casting to uint8
            column = torch.tensor(values).round().clamp(0, 255).to(torch.uint8).view(1, channels, 1)
            self._fills[key] = column.to(device)
        return self._fills[key]

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Augment a uint8 batch [B, C, H, W] with draws from ``generator`` (CPU), kept in ``last_ops``."""
        _check_images(images)
        ops, signs = self.sample_ops(images.shape[0], generator)
        self.last_ops = (ops, signs)
        return self.apply(images, ops, signs)


def _check_images(images: Tensor) -> None:
    if not isinstance(images, Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
        got = f"{images.dtype} {list(images.shape)}" if isinstance(images, Tensor) else type(images).__name__
        raise TypeError(f"BatchRandAugment needs a uint8 tensor [B, C, H, W], got {got}")
    if images.shape[1] not in (1, 3):
        raise ValueError(f"BatchRandAugment needs 1 or 3 channels, got {images.shape[1]}")
