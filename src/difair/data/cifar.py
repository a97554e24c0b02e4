"""CIFAR10 (6 known, 4 unknown) and CIFAR+10 / CIFAR+50 (4 CIFAR-10 known, 10 / 50 CIFAR-100 unknown).

CIFAR-10 is read with torchvision's ``CIFAR10`` from ``ROOT/cifar-10-batches-py`` (the python pickles); when
those are absent, from an ImageFolder-style JPEG tree ``ROOT/cifar10-jpeg/{train,test}/<class name>/*.jpg``,
whose class folders are mapped to the standard indices by name, decoded once into a cache (difair.data.cache).
CIFAR-100 is read with torchvision's ``CIFAR100`` from ``ROOT/cifar-100-python``; only its test set is used.

CIFAR+N source labels: CIFAR-10 classes keep 0..9, CIFAR-100 fine classes are offset by 100 (100..199), so
that ``test_source_labels`` tells the two datasets apart; ``unknown_class_names`` is indexed the same way
(200 entries, 10..99 empty).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from difair.config import DataConfig
from difair.data.base import OSRData
from difair.data.build import build_osr, image_size, load_failure, missing_dataset
from difair.data.cache import cache_dir_for, cached_images, list_images
from difair.data.registry import register_dataset
from difair.data.root import default_root
from difair.data.splits import get_cifar_plus_unknown, get_known_classes, get_unknown_digits
from difair.errors import DifairError

CIFAR_IMAGE_SIZE = 32
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR_PLUS_OFFSET = 100
CIFAR10_JPEG_DIR = "cifar10-jpeg"

Arrays = tuple[Tensor, np.ndarray]


def _torchvision_arrays(ds: Any) -> Arrays:
    images = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))
    return images, np.asarray(ds.targets, dtype=np.int64)


def _jpeg_split(tree: Path, split: str, cache_dir: Path) -> Arrays:
    folder = tree / split
    found = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if sorted(found) != sorted(CIFAR10_CLASSES):
        raise DifairError(
            f"{folder} must hold one folder per CIFAR-10 class ({', '.join(CIFAR10_CLASSES)}), found {found}"
        )
    files: list[str] = []
    labels: list[int] = []
    for idx, name in enumerate(CIFAR10_CLASSES):  # standard index by class name, not by folder order
        class_files = list_images(folder / name)
        files += class_files
        labels += [idx] * len(class_files)
    images = cached_images(
        files, root=tree, size=CIFAR_IMAGE_SIZE, label=f"cifar10-jpeg-{split}", cache_dir=cache_dir
    )
    return images, np.asarray(labels, dtype=np.int64)


def load_cifar10_arrays(
    root: Path, *, download: bool = False, verify: bool = True, cache_dir: Path | None = None
) -> tuple[Arrays, Arrays, dict[str, Any]]:
    """CIFAR-10 (train, test) arrays from the pickles, else the JPEG tree, else a download, and the source."""
    from difair.data.torchvision_sets import CheckedCIFAR10  # start-up time: torchvision.datasets takes ~2 s

    pickles = root / CheckedCIFAR10.base_folder
    tree = root / CIFAR10_JPEG_DIR
    if pickles.is_dir() or (download and not (tree / "train").is_dir()):
        try:
            train = _torchvision_arrays(CheckedCIFAR10(str(root), True, download=download, verify=verify))
            test = _torchvision_arrays(CheckedCIFAR10(str(root), False, download=download, verify=verify))
        except (RuntimeError, OSError, ValueError, KeyError, EOFError) as e:
            raise load_failure("CIFAR-10", pickles, e) from e
        return train, test, {"cifar10_source": "pickles", "source_paths": [str(pickles)]}
    if (tree / "train").is_dir() and (tree / "test").is_dir():
        cache_dir = cache_dir or cache_dir_for(root)
        train = _jpeg_split(tree, "train", cache_dir)
        test = _jpeg_split(tree, "test", cache_dir)
        return train, test, {"cifar10_source": "jpeg", "source_paths": [str(tree)]}
    raise missing_dataset(
        f"CIFAR-10 (looked for {CheckedCIFAR10.base_folder} and {CIFAR10_JPEG_DIR}/)", root, prepared=True
    )


def load_cifar100_test(
    root: Path, *, download: bool = False, verify: bool = True
) -> tuple[Arrays, list[str]]:
    """CIFAR-100 test images, fine labels, and the 100 fine class names."""
    from difair.data.torchvision_sets import CheckedCIFAR100  # start-up time: torchvision.datasets takes ~2 s

    folder = root / CheckedCIFAR100.base_folder
    if not folder.is_dir() and not download:
        raise missing_dataset("CIFAR-100 (for the CIFAR+N unknowns)", folder)
    try:
        ds = CheckedCIFAR100(str(root), False, download=download, verify=verify)
    except (RuntimeError, OSError, ValueError, KeyError, EOFError) as e:
        raise load_failure("CIFAR-100", folder, e) from e
    return _torchvision_arrays(ds), list(ds.classes)


@register_dataset("cifar10")
def load_cifar10(cfg: DataConfig, *, verify: bool = True, cache_dir: Path | None = None) -> OSRData:
    """The CIFAR10 split ``cfg.split`` of family ``cfg.split_family``."""
    train, test, source = load_cifar10_arrays(
        default_root(cfg), download=cfg.download, verify=verify, cache_dir=cache_dir
    )
    known = get_known_classes("cifar10", cfg.split, family=cfg.split_family)
    return build_osr(
        cfg,
        name="cifar10",
        known=known,
        unknown=get_unknown_digits("cifar10", cfg.split, family=cfg.split_family),
        train=train,
        test_known=test,
        test_unknown=test,
        source_names=CIFAR10_CLASSES,
        unknown_class_names=CIFAR10_CLASSES,
        size=image_size(cfg, CIFAR_IMAGE_SIZE),
        meta=source,
    )


def load_cifar_plus(
    cfg: DataConfig, n: int, *, verify: bool = True, cache_dir: Path | None = None
) -> OSRData:
    """CIFAR+``n`` (10 or 50): known CIFAR-10 classes per ``cfg.cifar_plus_known``, unknown CIFAR-100 ones."""
    from difair.data.torchvision_sets import CheckedCIFAR100  # start-up time: torchvision.datasets takes ~2 s

    root = default_root(cfg)
    known = get_known_classes(
        f"cifar+{n}", cfg.split, family=cfg.split_family, cifar_plus_known=cfg.cifar_plus_known
    )
    unknown = get_cifar_plus_unknown(n, cfg.split, family=cfg.split_family)
    (c100_test, c100_names) = load_cifar100_test(root, download=cfg.download, verify=verify)
    train, test, source = load_cifar10_arrays(root, download=cfg.download, verify=verify, cache_dir=cache_dir)
    names = CIFAR10_CLASSES + [""] * (CIFAR_PLUS_OFFSET - len(CIFAR10_CLASSES)) + c100_names
    source["source_paths"] = [*source["source_paths"], str(root / CheckedCIFAR100.base_folder)]
    return build_osr(
        cfg,
        name=f"cifar+{n}",
        known=known,
        unknown=unknown,
        train=train,
        test_known=test,
        test_unknown=c100_test,
        source_names=CIFAR10_CLASSES,
        unknown_class_names=names,
        size=image_size(cfg, CIFAR_IMAGE_SIZE),
        meta={**source, "cifar_plus_known": cfg.cifar_plus_known, "unknown_source_offset": CIFAR_PLUS_OFFSET},
        unknown_offset=CIFAR_PLUS_OFFSET,
    )


@register_dataset("cifar+10")
def load_cifar_plus_10(cfg: DataConfig) -> OSRData:
    """CIFAR+10: 4 known CIFAR-10 classes, 10 unknown CIFAR-100 classes."""
    return load_cifar_plus(cfg, 10)


@register_dataset("cifar+50")
def load_cifar_plus_50(cfg: DataConfig) -> OSRData:
    """CIFAR+50: 4 known CIFAR-10 classes, 50 unknown CIFAR-100 classes."""
    return load_cifar_plus(cfg, 50)
