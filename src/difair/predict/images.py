"""Image inputs of any kind (tensors, arrays, PIL images, files, folders) as the run's uint8 input batch."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from difair.data.cache import is_image_file, to_8bit  # to_8bit: the same conversion as the training cache
from difair.engine.load import LoadedRun, read_results
from difair.errors import DifairError


def run_image_size(run: LoadedRun) -> int:
    """The square input size the run was trained at."""
    if run.config.data.image_size:
        return int(run.config.data.image_size)
    data = (read_results(run.run_dir) or {}).get("data")
    size = data.get("image_size") if isinstance(data, dict) else None
    if type(size) is int and size > 0:
        return size
    raise DifairError(f"cannot tell the image size of {run.run_dir}: set data.image_size or run difair eval")


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


def _from_tensor(x: Tensor, size: int, channels: int) -> Tensor:
    """One image ``[C, H, W]`` (uint8 or float in [0, 1]) -> float ``[channels, size, size]``."""
    x = x.detach().cpu()
    x = x.float().div_(255) if x.dtype == torch.uint8 else x.float()
    if x.dim() == 2:
        x = x[None]
    c = x.shape[0]
    if c in (2, 4):  # drop alpha
        x = x[: c - 1]
    if x.shape[0] == 1 and channels == 3:
        x = x.expand(3, -1, -1)
    elif x.shape[0] == 3 and channels == 1:
        x = (x * torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)).sum(0, keepdim=True)
    if x.shape[0] != channels:
        raise DifairError(f"cannot convert a {c}-channel image to {channels} channels")
    if tuple(x.shape[-2:]) != (size, size):
        x = torch.nn.functional.interpolate(x[None], (size, size), mode="bilinear", antialias=True)[0]
    return x.clamp(0, 1)


def _array_to_tensor(a: np.ndarray) -> Tensor:
    """A numpy image, HxW, HxWxC (C in 1-4) or CxHxW, uint8 or float in [0, 1] -> ``[C, H, W]`` tensor."""
    if a.dtype == np.bool_:
        a = a.astype(np.float32)
    if a.dtype != np.uint8 and not np.issubdtype(a.dtype, np.floating):
        raise DifairError(f"numpy images must be uint8 or float in [0, 1], got {a.dtype}")
    t = torch.from_numpy(np.ascontiguousarray(a))
    if t.dim() == 3 and t.shape[-1] <= 4:  # HxWxC, the numpy (PIL, OpenCV) convention
        t = t.permute(2, 0, 1)
    elif t.dim() != 2 and not (t.dim() == 3 and t.shape[0] <= 4):
        raise DifairError(f"a numpy image must be HxW, HxWxC or CxHxW, got shape {tuple(a.shape)}")
    return t


def load_images(images: Any, size: int, channels: int) -> tuple[Tensor, list[str], list[tuple[str, str]]]:
    """Images of any supported kind -> float ``[B, channels, size, size]``, their names, and skipped inputs.

    Accepts a tensor ``[B, C, H, W]`` or ``[C, H, W]``, a numpy array (one image, HxW or HxWxC), a PIL image,
    a file path, a folder, or a list of these. An unreadable file is skipped with its reason, never fatal.
    """
    from PIL import Image, UnidentifiedImageError

    if isinstance(images, Tensor) and images.dim() == 4:
        items: list[Any] = list(images)
    elif isinstance(images, (list, tuple)):
        items = list(images)
    else:
        items = [images]
    items = expand_inputs(items)
    out, names, skipped = [], [], []
    for i, item in enumerate(items):
        name = os.fspath(item) if isinstance(item, (str, os.PathLike)) else f"#{i}"
        try:
            if isinstance(item, (str, os.PathLike)):
                with Image.open(item) as im:
                    im.load()
                    out.append(_from_pil(im, size, channels))
            elif isinstance(item, Image.Image):
                out.append(_from_pil(item, size, channels))
            elif isinstance(item, np.ndarray):
                out.append(_from_tensor(_array_to_tensor(item), size, channels))
            elif isinstance(item, Tensor):
                out.append(_from_tensor(item, size, channels))
            else:
                raise DifairError(f"unsupported input type {type(item).__name__}")
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


# ----------------------------------------------------------------------------------------------- prediction
