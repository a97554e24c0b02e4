"""ImageNet-SSB: all 1,000 ImageNet-1K classes known, ImageNet-21K (winter21) classes unknown (Easy, Hard).

For users who have the data; layout under ``data.root`` (as the SSB repository's ImageFolder roots):
``imagenet/train/<wnid>/*`` and ``imagenet/val/<wnid>/*`` (ImageNet-1K, the validation images sorted into class
folders), ``imagenet21k/imagenet21k_val/<wnid>/*`` (ImageNet-21K winter21, e.g. processed with Alibaba-MIIL's
ImageNet21K script). Known class index = position of the wnid in the sorted ImageNet-1K wnids (ImageFolder);
unknown source labels are 1000 + position in the Easy list then the Hard list (``unknown_class_names`` holds the
wnids). Unknown wnids without a folder are skipped and counted in ``meta["imagenet_ssb"]``.
Trained on ImageNet-1K train, tested on its val images and the 21K val images of every unknown class.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from difair.config import DataConfig
from difair.data.base import OSRData
from difair.data.build import build_osr, image_size
from difair.data.cache import cache_dir_for, cached_images, list_images
from difair.data.framing import resize_size
from difair.data.registry import register_dataset
from difair.data.root import default_root
from difair.data.ssb import IMAGENET_SSB, SSB_SOURCE, check_one_split, imagenet_ssb_unknown
from difair.errors import DatasetNotFound, DifairError

IN1K_DIR = "imagenet"
IN21K_DIR = "imagenet21k"
IN21K_VAL = "imagenet21k_val"
IN1K_CLASSES = 1000
IMAGENET_SSB_IMAGE_SIZE = 224
SOURCES = (
    "ImageNet-1K from https://image-net.org (ILSVRC2012, val sorted into class folders) and ImageNet-21K winter21 "
    "from https://image-net.org (processed as https://github.com/Alibaba-MIIL/ImageNet21K)"
)


def _class_folders(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _check_known_folders(folder: Path, in1k: list[str], labels: np.ndarray) -> None:
    """Refuse an ImageNet-1K train or val folder without a class folder of images for every wnid (the val images
    left flat, as ILSVRC2012 ships them), from its listing (``labels``: one per image found)."""
    counts = np.bincount(labels, minlength=len(in1k))
    empty = [in1k[i] for i in np.flatnonzero(counts == 0)]
    if empty:
        raise DifairError(
            f"{folder} has no images in a class folder for {len(empty)} of the {IN1K_CLASSES} ImageNet-1K wnids "
            f"(first: {empty[0]}): sort its images into <wnid>/ folders (e.g. with the ILSVRC2012 val labels)"
        )


def _pool(folder: Path, wnids: list[str], labels: list[int]) -> tuple[list[str], np.ndarray]:
    files: list[str] = []
    ys: list[int] = []
    for wnid, y in zip(wnids, labels, strict=True):
        class_files = list_images(folder / wnid) if (folder / wnid).is_dir() else []  # a known class: checked
        files += class_files
        ys += [y] * len(class_files)
    return files, np.asarray(ys, dtype=np.int64)


@register_dataset(IMAGENET_SSB)
def load_imagenet_ssb(cfg: DataConfig, *, cache_dir: Path | None = None) -> OSRData:
    """ImageNet-SSB: ImageNet-1K known; the SSB's Easy and Hard ImageNet-21K classes unknown."""
    check_one_split(cfg, IMAGENET_SSB)
    root = default_root(cfg)
    needed = [root / IN1K_DIR / "train", root / IN1K_DIR / "val", root / IN21K_DIR / IN21K_VAL]
    missing = [str(p.relative_to(root)) for p in needed if not p.is_dir()]
    if missing:
        found = f"ImageNet-SSB not found under {root} (missing {', '.join(missing)})"
        raise DatasetNotFound(
            f"{found}: expected {IN1K_DIR}/{{train,val}}/<wnid>/* and {IN21K_DIR}/{IN21K_VAL}/<wnid>/*; get "
            f"{SOURCES}, then --set data.root=PATH",
            found,
        )
    in1k = _class_folders(root / IN1K_DIR / "train")
    if len(in1k) != IN1K_CLASSES:
        raise DifairError(
            f"{root / IN1K_DIR / 'train'} holds {len(in1k)} class folders; ImageNet-SSB knows all {IN1K_CLASSES}"
        )
    subsets_wnids = imagenet_ssb_unknown()
    unknown_wnids = subsets_wnids["Easy"] + [
        w for w in subsets_wnids["Hard"] if w not in subsets_wnids["Easy"]
    ]
    u_index = {w: i for i, w in enumerate(unknown_wnids)}
    present = [w for w in unknown_wnids if (root / IN21K_DIR / IN21K_VAL / w).is_dir()]
    if not present:
        raise DifairError(
            f"{root / IN21K_DIR / IN21K_VAL} holds none of the SSB's ImageNet-21K classes: it needs winter21 folders"
        )
    size = image_size(cfg, IMAGENET_SSB_IMAGE_SIZE)
    cache_dir = cache_dir or cache_dir_for(root)
    known = list(range(IN1K_CLASSES))
    labels = list(range(IN1K_CLASSES))
    parts = {
        "train": (root / IN1K_DIR / "train", in1k, labels),
        "val": (root / IN1K_DIR / "val", in1k, labels),
        "unknown": (root / IN21K_DIR / IN21K_VAL, present, [u_index[w] for w in present]),
    }
    listed = {part: _pool(*args) for part, args in parts.items()}
    for part in ("train", "val"):  # from the listing, before hours of decoding begin
        _check_known_folders(parts[part][0], in1k, listed[part][1])
    pools = {}
    for part, (files, y) in listed.items():
        folder = parts[part][0]
        images = cached_images(
            files,
            root=folder,
            size=resize_size(size, cfg.crop_pct),  # the side a centre crop (data.crop_pct) starts from
            label=f"imagenet-ssb-{part}",
            cache_dir=cache_dir,
        )
        pools[part] = (images, y)
    subsets = {d: [u_index[w] for w in ws] for d, ws in subsets_wnids.items()}
    return build_osr(
        cfg,
        name=IMAGENET_SSB,
        known=known,
        unknown=list(range(len(unknown_wnids))),
        train=pools["train"],
        test_known=pools["val"],
        test_unknown=pools["unknown"],
        source_names=in1k,
        unknown_class_names=in1k + unknown_wnids,
        size=size,
        meta={
            "source_paths": [str(root / IN1K_DIR), str(root / IN21K_DIR)],
            "imagenet_ssb": {
                "source": SSB_SOURCE,
                "difficulties": {d: len(v) for d, v in subsets.items()},
                "missing_unknown_wnids": len(unknown_wnids) - len(present),
            },
        },
        unknown_offset=IN1K_CLASSES,
        unknown_subsets=subsets,
    )
