"""Image inputs of any kind (tensors, arrays, PIL images, files, folders) as the run's uint8 input batch."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from difair.data.cache import is_image_file, to_8bit  # to_8bit: the same conversion as the training cache
from difair.data.framing import center_crop, resize_size
from difair.engine.load import LoadedRun, read_results
from difair.errors import DifairError


def run_image_size(run: LoadedRun) -> int:
    """The square input size the run was trained at."""
    if run.config.data.image_size:
        return int(run.config.data.image_size)
    size = run.state.get("image_size")  # the checkpoint's (newer runs), else results.json's
    if not (type(size) is int and size > 0):
        data = (read_results(run.run_dir) or {}).get("data")
        size = data.get("image_size") if isinstance(data, dict) else None
    if type(size) is int and size > 0:
        return size
    raise DifairError(
        f"cannot tell the image size of {run.run_dir} (its checkpoint predates the record): "
        f"run difair eval {run.run_dir} first, which records it in results.json"
    )


# ----------------------------------------------------------------------------------------------- images
def _is_image_file(p: Path) -> bool:
    return is_image_file(p.name)


def expand_inputs(items: list[Any]) -> list[Any]:
    """Replace each folder (path) by its image files, sorted by name; other items stay as they are."""
    out: list[Any] = []
    for item in items:
        if isinstance(item, (str, os.PathLike)) and Path(item).is_dir():
            # dangling links stay in the list, so that they are reported as unreadable instead of vanishing
            out.extend(
                str(p)
                for p in sorted(Path(item).iterdir())
                if _is_image_file(p) and (p.is_file() or p.is_symlink())
            )
        else:
            out.append(item)
    return out


def _from_pil(im, size: int, channels: int) -> Tensor:
    im = to_8bit(im, "L" if channels == 1 else "RGB")
    if im.size != (size, size):
        from PIL import Image

        im = im.resize((size, size), Image.Resampling.BILINEAR)
    arr = np.asarray(im, dtype=np.uint8)
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return torch.from_numpy(arr.copy()).float().div_(255)


# float pixels this far outside [0, 1] (interpolation overshoot) are clamped, not refused
FLOAT_RANGE_SLACK = 0.01


def _from_tensor(x: Tensor, size: int, channels: int, name: str) -> Tensor:
    """One image ``[C, H, W]`` (uint8 or float in [0, 1]) -> float ``[channels, size, size]``."""
    x = x.detach().cpu()
    if x.dtype == torch.uint8:
        x = x.float().div_(255)
    elif x.dtype.is_floating_point:
        x = x.float()
        if x.numel() and not bool(torch.isfinite(x).all()):
            raise DifairError(
                f"{name}: the image holds NaN or infinite values: pass pixels in [0, 1] or uint8"
            )
        lo, hi = (float(x.min()), float(x.max())) if x.numel() else (0.0, 0.0)
        if lo < -FLOAT_RANGE_SLACK or hi > 1 + FLOAT_RANGE_SLACK:
            raise DifairError(
                f"{name}: a float image must hold values in [0, 1], this one ranges {lo:.4g} to {hi:.4g}: "
                "divide it by its full scale (255, or 16 for load_digits), undo any normalisation, or pass uint8"
            )
    else:
        raise DifairError(f"{name}: images must be uint8 or float in [0, 1], got {x.dtype}")
    if x.dim() == 2:
        x = x[None]
    if x.dim() != 3 or 0 in x.shape:
        raise DifairError(
            f"{name}: an image must be [C, H, W] or [H, W] with pixels, got shape {tuple(x.shape)}"
        )
    c = x.shape[0]
    if c in (2, 4):  # drop alpha
        x = x[: c - 1]
    if x.shape[0] == 1 and channels == 3:
        x = x.expand(3, -1, -1)
    elif x.shape[0] == 3 and channels == 1:
        x = (x * torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)).sum(0, keepdim=True)
    if x.shape[0] != channels:
        raise DifairError(f"{name}: cannot convert a {c}-channel image to {channels} channels")
    if tuple(x.shape[-2:]) != (size, size):
        x = torch.nn.functional.interpolate(x[None], (size, size), mode="bilinear", antialias=True)[0]
    return x.clamp(0, 1)


def _array_to_tensor(a: np.ndarray, name: str) -> Tensor:
    """A numpy image, HxW, HxWxC (C in 1-4) or CxHxW, uint8 or float in [0, 1] -> ``[C, H, W]`` tensor."""
    if a.dtype == np.bool_:
        a = a.astype(np.float32)
    if a.dtype != np.uint8 and not np.issubdtype(a.dtype, np.floating):
        raise DifairError(f"{name}: numpy images must be uint8 or float in [0, 1], got {a.dtype}")
    t = torch.from_numpy(np.ascontiguousarray(a))
    if t.dim() == 3 and t.shape[-1] <= 4:  # HxWxC, the numpy (PIL, OpenCV) convention
        t = t.permute(2, 0, 1)
    elif t.dim() != 2 and not (t.dim() == 3 and t.shape[0] <= 4):
        raise DifairError(
            f"{name}: a numpy image must be HxW, HxWxC or CxHxW (C <= 4), got shape {tuple(a.shape)}: "
            "pass a batch as a 4-D array (N, H, W, C) or (N, C, H, W), or as a list of images"
        )
    return t


def _batch_items(images: Any) -> list[Any]:
    """The single inputs in ``images``: a 4-D tensor or array is a batch, a list holds inputs, anything else is one."""
    if isinstance(images, (Tensor, np.ndarray)) and images.ndim == 4:
        return list(images)
    if isinstance(images, (list, tuple)):
        return list(images)
    return [images]


def _in_memory(item: Any, size: int, channels: int, name: str, whole: bool = False) -> Tensor:
    """A tensor, array or PIL image as the run's input; anything that is not one is refused (DifairError).
    ``whole``: ``item`` is all the caller passed (not one image of a batch or list), so a 3-D greyscale stack of
    2-4 images cannot be told from one colour image."""
    from PIL import Image  # start-up time: PIL is imported only when images are read

    if isinstance(item, Image.Image):
        return _from_pil(item, size, channels)
    shape = tuple(getattr(item, "shape", ()))
    if whole and channels == 1 and len(shape) == 3 and 2 <= shape[0] <= 4 and shape[-1] > 4:
        raise DifairError(
            f"{name}: shape {shape} is ambiguous for this greyscale run: one {shape[0]}-channel image (C, H, W) or "
            f"{shape[0]} images (N, H, W); pass a batch as (N, 1, H, W) or a list of images, a colour image as a "
            "PIL image or an (H, W, C) array"
        )
    if isinstance(item, np.ndarray):
        return _from_tensor(_array_to_tensor(item, name), size, channels, name)
    if isinstance(item, Tensor):
        return _from_tensor(item, size, channels, name)
    raise DifairError(
        f"{name}: unsupported input type {type(item).__name__}: pass tensors, numpy arrays, PIL images or paths"
    )


def load_images(images: Any, size: int, channels: int) -> tuple[Tensor, list[str], list[tuple[str, str]]]:
    """Images of any supported kind -> float ``[B, channels, size, size]``, their names, and skipped files.

    Accepts a tensor or numpy array holding a batch (4-D) or one image (``[C, H, W]``; numpy also HxW, HxWxC), a
    PIL image, a file path, a folder, or a list of these. A file that cannot be read is skipped with its reason,
    never fatal; an in-memory input that is not an image (wrong shape, dtype, or float values outside [0, 1])
    raises DifairError, since it is a bug in the calling code, not a bad file among many.
    """
    from PIL import Image, UnidentifiedImageError

    items = expand_inputs(_batch_items(images))
    whole = len(items) == 1 and items[0] is images  # one input, not an image of a batch or list
    out, names, skipped = [], [], []
    for i, item in enumerate(items):
        if not isinstance(item, (str, os.PathLike)):
            out.append(_in_memory(item, size, channels, f"#{i}", whole))
            names.append(f"#{i}")
            continue
        name = os.fspath(item)
        try:
            with Image.open(item) as im:
                im.load()
                out.append(_from_pil(im, size, channels))
        except (OSError, ValueError, SyntaxError, UnidentifiedImageError, Image.DecompressionBombError) as e:
            skipped.append(
                (name, f"cannot read image: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
            )
            continue
        except DifairError as e:
            skipped.append((name, str(e)))
            continue
        names.append(name)
    batch = torch.stack(out) if out else torch.empty(0, channels, size, size)
    return batch, names, skipped


def prepare_images(
    images: Any, size: int, channels: int, crop_pct: float | None = None
) -> tuple[Tensor, list[str], list[tuple[str, str]]]:
    """``load_images`` framed as a run's data were: with ``crop_pct`` < 1 resized to ``size / crop_pct`` and
    centre-cropped to ``size`` (the model input of ``predict``, ``explain`` and the activation maps alike)."""
    x, names, skipped = load_images(images, resize_size(size, crop_pct), channels)
    return center_crop(x, size), names, skipped


# ----------------------------------------------------------------------------------------------- prediction
