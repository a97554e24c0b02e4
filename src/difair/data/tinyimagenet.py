"""Tiny ImageNet open-set splits: 20 known classes, 180 unknown; 64x64 RGB (grayscale images converted).

Official layout in ``ROOT/tiny-imagenet-200``: ``wnids.txt``, ``words.txt``, ``train/<wnid>/images/*.JPEG``,
``val/images/*.JPEG`` with labels in ``val/val_annotations.txt``. The val set (50 per class) is the test set;
the unlabelled official test folder is unused. Images are decoded once into a cache (difair.data.cache).

Class index convention (``data.tinyimagenet_order``): ``sorted`` = position of the wnid in sorted order
(torchvision ImageFolder, Vaze et al., default); ``wnids`` = line of ``wnids.txt`` (the DIFAIR authors' TFDS
builder). The same split lists then select different classes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from difair.config import TINYIMAGENET_ORDERS, DataConfig
from difair.data.base import OSRData
from difair.data.build import build_osr, image_size, missing_dataset, one_line
from difair.data.cache import cache_dir_for, cached_images, list_images
from difair.data.registry import register_dataset
from difair.data.root import default_root
from difair.data.splits import get_known_classes
from difair.errors import DifairError

TINY_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
TINY_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"
TINY_DIR = "tiny-imagenet-200"
TINY_IMAGE_SIZE = 64


def tinyimagenet_dir(root: Path) -> Path:
    """Where Tiny ImageNet is looked for under the data root."""
    return Path(root) / TINY_DIR


def download_tinyimagenet(root: Path) -> Path:
    """Download the official zip into ``root``, check its md5 and extract it; returns the dataset folder."""
    from torchvision.datasets.utils import download_and_extract_archive

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    try:
        download_and_extract_archive(TINY_URL, download_root=str(root), md5=TINY_MD5, remove_finished=True)
    except (OSError, RuntimeError, ValueError) as e:
        raise DifairError(
            f"could not download Tiny ImageNet from {TINY_URL} into {root}: {one_line(e)}"
        ) from e
    return tinyimagenet_dir(root)


def _check_layout(folder: Path) -> list[str]:
    needed = [
        folder / "wnids.txt",
        folder / "words.txt",
        folder / "train",
        folder / "val" / "val_annotations.txt",
    ]
    return [str(p.relative_to(folder)) for p in needed if not p.exists()]


def tinyimagenet_wnids(folder: Path, order: str = "sorted") -> list[str]:
    """The 200 wnids in class-index order: ``sorted`` (Vaze et al.) or ``wnids`` (wnids.txt lines, DIFAIR)."""
    wnids = [w.strip() for w in (Path(folder) / "wnids.txt").read_text().splitlines() if w.strip()]
    if order == "sorted":
        return sorted(wnids)
    if order == "wnids":
        return wnids
    raise DifairError(f"unknown data.tinyimagenet_order {order!r}: choose {' or '.join(TINYIMAGENET_ORDERS)}")


def tinyimagenet_names(folder: Path, wnids: list[str]) -> list[str]:
    """The first synonym of each wnid in ``words.txt`` (the wnid itself when absent)."""
    wanted = set(wnids)
    names: dict[str, str] = {}
    for line in (Path(folder) / "words.txt").read_text().splitlines():
        wnid, _, words = line.partition("\t")
        if wnid in wanted:
            names[wnid] = words.split(",")[0].strip()
    return [names.get(w, w) for w in wnids]


def _train_files(folder: Path, wnids: list[str]) -> tuple[list[str], list[str]]:
    files: list[str] = []
    owners: list[str] = []
    for wnid in sorted(wnids):  # canonical order: the cache does not depend on the index convention
        images = folder / "train" / wnid / "images"
        if not images.is_dir():
            raise DifairError(f"Tiny ImageNet class folder {images} is missing: re-extract {TINY_DIR}")
        class_files = list_images(images)
        files += class_files
        owners += [wnid] * len(class_files)
    return files, owners


def _val_files(folder: Path) -> tuple[list[str], list[str]]:
    files: list[str] = []
    owners: list[str] = []
    images = os.fspath(folder / "val" / "images")
    for line in (folder / "val" / "val_annotations.txt").read_text().splitlines():
        parts = line.split("\t")
        if len(parts) >= 2:
            files.append(os.path.join(images, parts[0]))
            owners.append(parts[1])
    return files, owners


@register_dataset("tinyimagenet")
def load_tinyimagenet(cfg: DataConfig, *, cache_dir: Path | None = None) -> OSRData:
    """Tiny ImageNet split ``cfg.split`` (family ``cfg.split_family``, order ``cfg.tinyimagenet_order``)."""
    root = default_root(cfg)
    folder = tinyimagenet_dir(root)
    missing = _check_layout(folder)
    if missing and cfg.download:
        download_tinyimagenet(root)
        missing = _check_layout(folder)
    if missing:
        raise missing_dataset(f"Tiny ImageNet ({', '.join(missing)})", folder, prepared=True)
    wnids = tinyimagenet_wnids(folder, cfg.tinyimagenet_order)
    index = {w: i for i, w in enumerate(wnids)}
    train_files, train_owner = _train_files(folder, wnids)
    val_files, val_owner = _val_files(folder)
    unknown_wnids = sorted(set(val_owner) - set(index))
    if unknown_wnids:
        raise DifairError(
            f"{folder / 'val' / 'val_annotations.txt'} names wnids not in wnids.txt: {unknown_wnids[:3]}"
        )
    cache_dir = cache_dir or cache_dir_for(root)
    x_train = cached_images(
        train_files, root=folder, size=TINY_IMAGE_SIZE, label="tinyimagenet-train", cache_dir=cache_dir
    )
    x_val = cached_images(
        val_files, root=folder, size=TINY_IMAGE_SIZE, label="tinyimagenet-val", cache_dir=cache_dir
    )
    y_train = np.asarray([index[w] for w in train_owner], dtype=np.int64)
    y_val = np.asarray([index[w] for w in val_owner], dtype=np.int64)
    known = get_known_classes("tinyimagenet", cfg.split, family=cfg.split_family)
    names = tinyimagenet_names(folder, wnids)
    return build_osr(
        cfg,
        name="tinyimagenet",
        known=known,
        unknown=[c for c in range(len(wnids)) if c not in known],
        train=(x_train, y_train),
        test_known=(x_val, y_val),
        test_unknown=(x_val, y_val),
        source_names=names,
        unknown_class_names=names,
        size=image_size(cfg, TINY_IMAGE_SIZE),
        meta={
            "tinyimagenet_order": cfg.tinyimagenet_order,
            "known_wnids": [wnids[c] for c in known],
            "source_paths": [str(folder)],
        },
    )
