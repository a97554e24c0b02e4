"""Open-set splits from your own images: ``folder:PATH`` holding ``PATH/{train,test}/<class>/*``.

``data.known`` lists the known classes, by folder name or by index into the sorted class names; every other
class is unknown (its training images, if any, are ignored; its test images are the unknown test set). Images
are converted to RGB, resized to ``data.image_size`` (32 by default) without cropping (with ``data.crop_pct`` < 1:
to ``floor(size / crop_pct)``, then centre-cropped to the size), and cached; with ``data.cache=stream`` (or
``auto`` when they exceed the memory budget) the training images are decoded batch by batch instead
(difair.data.stream), the test images still go through the cache.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from difair.config import DataConfig, TrainConfig, folder_path, is_folder
from difair.data.base import OSRData
from difair.data.build import build_osr, image_size
from difair.data.cache import cached_images, list_images
from difair.data.framing import resize_size
from difair.data.registry import register_dataset
from difair.data.stream import StreamImages, choose_cache
from difair.errors import DatasetNotFound, DifairError

FOLDER_IMAGE_SIZE = 32


def folder_classes(path: Path) -> list[str]:
    """Sorted class names: the sub-folders of ``PATH/train`` and ``PATH/test``."""
    names: set[str] = set()
    for split in ("train", "test"):
        d = path / split
        if not d.is_dir():
            raise DifairError(
                f"{d} is missing: a folder dataset needs PATH/train/<class>/* and PATH/test/<class>/*"
            )
        names |= {p.name for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")}
    if not names:
        raise DifairError(f"{path} holds no class folders under train/ or test/")
    return sorted(names)


def resolve_known(known: list[str] | None, classes: list[str]) -> list[int]:
    """Known class indices (into ``classes``) from names or index strings, in the given order."""
    if not known:
        raise DifairError(
            "a folder dataset needs its known classes: --set data.known=NAME1,NAME2 "
            f"(classes: {', '.join(classes[:8])}" + (", ..." if len(classes) > 8 else "") + ")"
        )
    out: list[int] = []
    for k in known:
        k = str(k).strip()
        if k in classes:
            idx = classes.index(k)
        elif k.lstrip("-").isdigit() and 0 <= int(k) < len(classes):
            idx = int(k)
        else:
            raise DifairError(
                f"data.known names {k!r}, which is neither a class folder nor an index 0..{len(classes) - 1}"
            )
        if idx in out:
            raise DifairError(f"data.known lists class {classes[idx]!r} twice")
        out.append(idx)
    if len(out) == len(classes):
        raise DifairError("data.known lists every class: leave at least one class unknown")
    return out


def _files(path: Path, split: str, classes: list[str]) -> tuple[list[str], np.ndarray]:
    files: list[str] = []
    labels: list[int] = []
    for idx, name in enumerate(classes):
        d = path / split / name
        if d.is_dir():
            class_files = list_images(d)
            files += class_files
            labels += [idx] * len(class_files)
    return files, np.asarray(labels, dtype=np.int64)


def _open(cfg: DataConfig) -> tuple[Path, list[str], list[int]]:
    """The folder of ``cfg.name``, its class names and the indices of the known ones; one line if it is absent."""
    path = folder_path(cfg.name, cfg.root)
    if not path.is_dir():
        relative = not folder_path(cfg.name).is_absolute()
        raise DatasetNotFound(
            f"folder dataset {path} not found: --set data.name=folder:PATH with PATH/train and PATH/test",
            f"folder dataset {path} not found",
            "put the folder back there, or point data.root in the run's config.yaml (not part of the run's "
            f"identity) at the folder that holds {folder_path(cfg.name)}"
            if relative
            else "put the folder back there (an absolute folder:PATH is part of the run's identity)",
        )
    classes = folder_classes(path)
    return path, classes, resolve_known(cfg.known, classes)


def folder_decoded_bytes(cfg: DataConfig) -> int:
    """Bytes of the decoded known-class training images of the folder dataset ``cfg`` (as the cache holds them:
    RGB at ``resize_size``); lists the files, decodes nothing."""
    path, classes, known = _open(cfg)
    side = resize_size(image_size(cfg, FOLDER_IMAGE_SIZE), cfg.crop_pct)
    n = sum(
        len(list_images(path / "train" / classes[k])) for k in known if (path / "train" / classes[k]).is_dir()
    )
    return decoded_bytes(n, side)


def decoded_bytes(n: int, side: int) -> int:
    """Bytes of ``n`` RGB uint8 images of ``side x side`` pixels."""
    return n * 3 * side * side


@register_dataset("folder")
def load_folder(cfg: DataConfig, *, cache_dir: Path | None = None) -> OSRData:
    """The open-set split of the image folder ``cfg.name`` (``folder:PATH``) with known ``cfg.known``."""
    path, classes, known = _open(cfg)
    unknown = [c for c in range(len(classes)) if c not in known]
    size = image_size(cfg, FOLDER_IMAGE_SIZE)
    listed = {split: _files(path, split, classes) for split in ("train", "test")}  # all classes: one cache
    counts = np.bincount(listed["train"][1], minlength=len(classes))  # serves every choice of known
    empty = [classes[k] for k in known if counts[k] == 0]
    if empty:  # before anything is decoded or cached
        raise DifairError(
            f"known class {empty[0]!r} has no training images in {path / 'train' / empty[0]}: add images there "
            "or leave it out of data.known"
        )
    decode = resize_size(
        size, cfg.crop_pct
    )  # the side a centre crop (data.crop_pct) starts from: resized once
    cache, why = cfg.cache, "data.cache=" + cfg.cache
    if cache == "auto":  # a run resolves it first (resolve_cache); a bare load does it here
        n_known = int(np.isin(listed["train"][1], known).sum())
        cache, why = choose_cache(cfg, decoded_bytes(n_known, decode))
    pools = {}
    for split, (files, labels) in listed.items():
        if split == "train" and cache == "stream":  # decoded batch by batch while training
            pools[split] = (StreamImages(files, decode, size, workers=cfg.workers), labels)
            continue
        images = cached_images(files, root=path, size=decode, label=f"folder-{split}", cache_dir=cache_dir)
        pools[split] = (images, labels)
    ignored = sorted({classes[c] for c in np.unique(pools["train"][1]) if c not in known})
    return build_osr(
        cfg,
        name=cfg.name,
        known=known,
        unknown=unknown,
        train=pools["train"],
        test_known=pools["test"],
        test_unknown=pools["test"],
        source_names=classes,
        unknown_class_names=classes,
        size=size,
        meta={
            "source_paths": [str(path)],
            "ignored_train_classes": ignored,
            "cache": cache,
            "cache_why": why,
        },
    )


def resolve_cache(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with ``data.cache=auto`` replaced by ``memory`` or ``stream``, the reason in ``cfg.auto.cache``.

    Datasets other than ``folder:PATH`` are always loaded whole (``memory``). Needs a resolved ``crop_pct``.
    """
    if cfg.data.cache != "auto":
        return cfg
    if not is_folder(cfg.data.name):
        cfg.data.cache, why = "memory", f"{cfg.data.name} is loaded whole"
    else:
        cfg.data.cache, why = choose_cache(cfg.data, folder_decoded_bytes(cfg.data))
    cfg.auto.cache = f"auto -> {cfg.data.cache}: {why}"
    return cfg
