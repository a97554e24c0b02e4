"""The steps every benchmark loader shares: pick known/unknown classes, resize, normalise, assemble, and the
one-line error for a dataset that is not where it was looked for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from difair.config import MIN_IMAGE_SIZE, DataConfig
from difair.data.base import OSRData, Part, assemble, select_known
from difair.data.framing import resize_crop_uint8
from difair.data.normalization import resolve_normalization
from difair.data.stream import StreamImages, take
from difair.errors import DatasetNotFound, DifairError

PREPARE_TOOL = Path(
    "../shared/tools/prepare-data"
)  # the development machines' copy of the data, beside the repo


def image_size(cfg: DataConfig, default: int) -> int:
    """``cfg.image_size`` if set, else the dataset's ``default``."""
    size = cfg.image_size or default
    if size < MIN_IMAGE_SIZE:  # DataConfig.validate checks it too; a loader called directly is checked here
        raise DifairError(
            f"data.image_size must be >= {MIN_IMAGE_SIZE}, got {size}: leave it unset for the dataset's own size"
        )
    return size


def missing_dataset(
    what: str, where: Path, *, can_download: bool = True, prepared: bool = False
) -> DatasetNotFound:
    """The error for a dataset absent from ``where``: one line naming the place and the ways to get it."""
    fixes = (["--set data.download=true"] if can_download else []) + [
        "--set data.root=PATH (a folder holding it)"
    ]
    tool = prepared and PREPARE_TOOL.is_file()  # named only where it exists: elsewhere it is no help
    hint = f"; or unpack it with {PREPARE_TOOL} DEST, then --set data.root=DEST" if tool else ""
    found = f"{what} not found at {where}"
    return DatasetNotFound(f"{found}: get it with {' or '.join(fixes)}{hint}", found)


def load_failure(what: str, where: Path, exc: BaseException) -> DifairError:
    """The error for files torchvision could not load: present files that fail its md5 check are named as such
    (its own words, "not found or corrupted ... download=True", read as if nothing were there)."""
    if "corrupted" in str(exc) and where.exists():
        return DifairError(
            f"{what} at {where} fails torchvision's md5 check (a damaged or non-official copy): restore the "
            "official files, or fetch them again with --set data.download=true"
        )
    return DifairError(f"could not load {what} from {where}: {one_line(exc)}")


def one_line(err: BaseException) -> str:
    """An exception's message on one line."""
    return " ".join(str(err).split()) or type(err).__name__


def _take(images: Tensor, mask: np.ndarray) -> Tensor:
    return take(images, torch.from_numpy(np.flatnonzero(mask)))  # StreamImages: the subset, undecoded


def build_osr(
    cfg: DataConfig,
    *,
    name: str,
    known: list[int],
    unknown: list[int],
    train: tuple[Tensor, np.ndarray],
    test_known: tuple[Tensor, np.ndarray],
    test_unknown: tuple[Tensor, np.ndarray],
    source_names: list[str],
    unknown_class_names: list[str],
    size: int,
    meta: dict[str, Any],
    unknown_offset: int = 0,
    unknown_subsets: dict[str, list[int]] | None = None,
) -> OSRData:
    """Select the known classes for training and test, the unknown ones for test, then balance and assemble.

    Every part is framed alike: resized to ``size`` (by ``floor(size / crop_pct)`` then centre-cropped when
    ``cfg.crop_pct`` < 1, the evaluation framing of a pretrained backbone), so the training images a frozen
    backbone's features come from look like the test images.

    Each pool is ``(uint8 images [N, C, H, W], source labels [N])``. Known labels are remapped in the order of
    ``known``; unknown test samples get -1 and keep ``source label + unknown_offset`` in
    ``test_source_labels``. ``unknown_subsets`` names groups of ``unknown`` (source labels before the offset)
    that evaluation reports one by one (the SSB's difficulties).
    """
    overlap = set(known) & set(unknown) if unknown_offset == 0 else set()
    if overlap:
        raise DifairError(f"classes {sorted(overlap)} are both known and unknown in {name} split {cfg.split}")
    tr_mask, tr_labels = select_known(train[1], known)
    x_train = _take(train[0], tr_mask)
    if not isinstance(x_train, StreamImages):  # a stream decodes with this framing itself
        x_train = resize_crop_uint8(x_train, size, cfg.crop_pct)
    k_mask, k_labels = select_known(test_known[1], known)
    x_known = resize_crop_uint8(_take(test_known[0], k_mask), size, cfg.crop_pct)
    u_mask = np.isin(test_unknown[1], unknown)
    x_unknown = resize_crop_uint8(_take(test_unknown[0], u_mask), size, cfg.crop_pct)
    if len(x_train) == 0 or len(x_known) == 0 or len(x_unknown) == 0:
        raise DifairError(
            f"{name} split {cfg.split} has {len(x_train)} training, {len(x_known)} known test and "
            f"{len(x_unknown)} unknown test images: every part needs at least one"
        )
    mean, std, norm_meta = resolve_normalization(cfg, name, x_train, known)
    full_meta = {
        "split_family": cfg.split_family,
        "crop_pct": cfg.crop_pct or 1.0,
        "known_source_classes": list(known),
        "unknown_source_classes": list(unknown),
        "tinyimagenet_order": None,
        "cifar_plus_known": None,
        **norm_meta,
        **meta,
    }
    return assemble(
        name,
        cfg.split,
        [source_names[c] for c in known],
        Part(x_train, tr_labels),
        Part(x_known, k_labels, np.asarray(test_known[1])[k_mask]),
        Part(x_unknown, source=np.asarray(test_unknown[1])[u_mask] + unknown_offset),
        balance=cfg.balance,
        balance_seed=cfg.balance_seed,
        mean=mean,
        std=std,
        unknown_class_names=unknown_class_names,
        meta=full_meta,
        unknown_subsets={k: [c + unknown_offset for c in v] for k, v in (unknown_subsets or {}).items()},
    )
