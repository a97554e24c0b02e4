"""The SSB's fine-grained datasets ``cub``, ``aircraft`` and ``scars`` in their official on-disk layouts.

- ``cub``: ``ROOT/CUB_200_2011/{images.txt, image_class_labels.txt, train_test_split.txt, classes.txt, images/}``
  (Caltech's archive). Class index = id of ``image_class_labels.txt`` (1..200) minus 1; train/test by
  ``train_test_split.txt`` (1 = training image).
- ``aircraft``: torchvision's ``FGVCAircraft`` layout ``ROOT/fgvc-aircraft-2013b/data/{variants.txt,
  images_variant_trainval.txt, images_variant_test.txt, images/<id>.jpg}``, read by torchvision; trained on
  trainval, tested on test. Class index = position of the variant name in the sorted unique names of the split
  file (Vaze's ``np.unique``), not torchvision's ``variants.txt`` line order.
- ``scars``: torchvision's ``StanfordCars`` layout ``ROOT/stanford_cars/{devkit/cars_meta.mat,
  devkit/cars_train_annos.mat, cars_test_annos_withlabels.mat, cars_train/, cars_test/}``, read by torchvision.
  Class index = annotation class (1..196) minus 1 (torchvision's label).

Images are converted to RGB and resized to ``data.image_size`` (448, the protocol's, by default) without cropping,
decoded once into a cache (difair.data.cache). Splits and difficulties: difair.data.ssb.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from difair.config import DataConfig
from difair.data.base import OSRData
from difair.data.build import build_osr, image_size, one_line
from difair.data.cache import cache_dir_for, cached_images
from difair.data.framing import resize_size
from difair.data.registry import register_dataset
from difair.data.root import default_root
from difair.data.ssb import (
    check_one_split,
    ssb_all_unknown,
    ssb_known_classes,
    ssb_meta,
    ssb_unknown_subsets,
)
from difair.errors import DatasetNotFound, DifairError

SSB_IMAGE_SIZE = 448  # Vaze et al.'s fine-grained protocol

CUB_DIR = "CUB_200_2011"
CUB_CLASSES = 200  # image_class_labels.txt ids 1..200
CUB_FILES = ("images.txt", "image_class_labels.txt", "train_test_split.txt", "images")
CUB_SOURCE = "https://www.vision.caltech.edu/datasets/cub_200_2011/ (CUB_200_2011.tgz)"
AIRCRAFT_DIR = "fgvc-aircraft-2013b"
AIRCRAFT_FILES = (
    "data/variants.txt",
    "data/images_variant_trainval.txt",
    "data/images_variant_test.txt",
    "data/images",
)
AIRCRAFT_SOURCE = "https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/ (fgvc-aircraft-2013b.tar.gz)"
SCARS_DIR = "stanford_cars"
SCARS_FILES = (
    "devkit/cars_meta.mat",
    "devkit/cars_train_annos.mat",
    "cars_test_annos_withlabels.mat",
    "cars_train",
    "cars_test",
)
SCARS_SOURCE = (
    "the Stanford Cars release (its original URL is offline; torchvision.datasets.StanfordCars names mirrors)"
)

Pool = tuple[list[str], np.ndarray]  # image files and their source class indices


def check_layout(what: str, folder: Path, needed: tuple[str, ...], source: str, root: Path) -> None:
    """One line naming the missing parts, the expected layout and where to get it, when ``folder`` lacks any."""
    missing = [n for n in needed if not (folder / n).exists()]
    if missing:
        found = f"{what} not found at {folder} (missing {', '.join(missing)})"
        raise DatasetNotFound(
            f"{found}: expected {folder.name}/{{{', '.join(needed)}}} under data.root ({root}); get it from "
            f"{source}, then --set data.root=PATH (the folder holding it)",
            found,
        )


def _lines(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines() if line.strip()]


def cub_pools(folder: Path) -> tuple[Pool, Pool, list[str]]:
    """CUB-200-2011 (train, test) pools from the official metadata, and the 200 class names by index."""
    try:
        paths = {int(i): p for i, p in _lines(folder / "images.txt")}
        labels = {int(i): int(c) - 1 for i, c in _lines(folder / "image_class_labels.txt")}
        is_train = {int(i): t == "1" for i, t in _lines(folder / "train_test_split.txt")}
    except ValueError as exc:  # a line that is not "ID VALUE" with whole numbers
        raise DifairError(
            f"{folder}: a line of images.txt, image_class_labels.txt or train_test_split.txt is not 'ID VALUE' "
            f"({exc}): restore the official CUB-200-2011 files"
        ) from exc
    if labels and not 0 <= min(labels.values()) <= max(labels.values()) < CUB_CLASSES:
        raise DifairError(
            f"{folder}/image_class_labels.txt names classes outside 1..{CUB_CLASSES}: restore the official file"
        )
    if not (paths.keys() == labels.keys() == is_train.keys()):
        raise DifairError(
            f"{folder}: images.txt, image_class_labels.txt and train_test_split.txt list different image ids"
        )
    n_classes = max(labels.values()) + 1
    names = [str(c) for c in range(n_classes)]
    classes_txt = folder / "classes.txt"
    if classes_txt.is_file():
        for i, name in (
            line.split(maxsplit=1) for line in classes_txt.read_text().splitlines() if line.strip()
        ):
            if 0 <= int(i) - 1 < n_classes:
                names[int(i) - 1] = name.strip()
    else:  # the class folder of the first image of each class
        for i in sorted(paths):
            c = labels[i]
            if names[c] == str(c):
                names[c] = paths[i].split("/")[0]
    pools: dict[bool, tuple[list[str], list[int]]] = {True: ([], []), False: ([], [])}
    for i in sorted(paths):
        files, ys = pools[is_train[i]]
        files.append(str(folder / "images" / paths[i]))
        ys.append(labels[i])
    train, test = (pools[k] for k in (True, False))
    return (
        (train[0], np.asarray(train[1], dtype=np.int64)),
        (test[0], np.asarray(test[1], dtype=np.int64)),
        names,
    )


def aircraft_pools(root: Path) -> tuple[Pool, Pool, list[str]]:
    """FGVC-Aircraft 2013b (trainval, test) pools read by torchvision, relabelled by sorted variant name."""
    from torchvision.datasets import FGVCAircraft  # start-up time: torchvision.datasets takes ~2 s

    names_by_split = {}
    files_by_split = {}
    for split in ("trainval", "test"):
        try:
            ds = FGVCAircraft(str(root), split=split, annotation_level="variant")
        except KeyError as e:  # torchvision maps each image's variant through variants.txt
            raise DifairError(
                f"could not read FGVC-Aircraft from {root / AIRCRAFT_DIR}: variant {e.args[0]!r} of "
                f"images_variant_{split}.txt is not in variants.txt: restore the 2013b release's files"
            ) from e
        except (RuntimeError, OSError, ValueError) as e:
            raise DifairError(
                f"could not read FGVC-Aircraft from {root / AIRCRAFT_DIR}: {one_line(e)}"
            ) from e
        files_by_split[split] = list(ds._image_files)
        names_by_split[split] = [ds.classes[y] for y in ds._labels]
    variants = sorted(set(names_by_split["trainval"]))  # Vaze's np.unique order
    if sorted(set(names_by_split["test"])) != variants:
        raise DifairError(
            f"{root / AIRCRAFT_DIR}: images_variant_trainval.txt and images_variant_test.txt hold different "
            "variants; the SSB class indices need the full 2013b release"
        )
    index = {v: i for i, v in enumerate(variants)}
    pools = [
        (files_by_split[s], np.asarray([index[n] for n in names_by_split[s]], dtype=np.int64))
        for s in ("trainval", "test")
    ]
    return pools[0], pools[1], variants


def scars_pools(root: Path) -> tuple[Pool, Pool, list[str]]:
    """Stanford Cars (train, test) pools read by torchvision (label = annotation class - 1), and the names."""
    from torchvision.datasets import StanfordCars  # start-up time: torchvision.datasets takes ~2 s

    pools = []
    names: list[str] = []
    for split in ("train", "test"):
        try:
            ds = StanfordCars(str(root), split=split)
        except (RuntimeError, OSError, KeyError, ValueError, IndexError) as e:
            raise DifairError(f"could not read Stanford Cars from {root / SCARS_DIR}: {one_line(e)}") from e
        pools.append(
            ([str(p) for p, _ in ds._samples], np.asarray([int(y) for _, y in ds._samples], dtype=np.int64))
        )
        names = [str(n) for n in ds.classes]
    return pools[0], pools[1], names


def build_ssb(
    cfg: DataConfig,
    name: str,
    train: Pool,
    test: Pool,
    names: list[str],
    folder: Path,
    cache_dir: Path | None,
) -> OSRData:
    """Decode the images the split needs (known training images, every test image) and build the SSB split."""
    check_one_split(cfg, name)
    known = ssb_known_classes(name)
    subsets = ssb_unknown_subsets(name)
    unknown = ssb_all_unknown(subsets)
    top = max(known + unknown)
    if top >= len(names):
        raise DifairError(f"{folder} holds {len(names)} classes, the SSB {name} lists index class {top}")
    for part, pool, classes in (("training", train, known), ("test", test, known + unknown)):
        absent = sorted(set(classes) - set(np.asarray(pool[1]).tolist()))
        if absent:  # before any decode: a partial download would train and score other classes
            shown = ", ".join(f"{c} ({names[c]})" for c in absent[:6]) + (" ..." if len(absent) > 6 else "")
            raise DifairError(
                f"{folder} is incomplete: class {shown} of the SSB {name} lists has no {part} image: restore the "
                "full release"
            )
    size = image_size(cfg, SSB_IMAGE_SIZE)
    cache_dir = cache_dir or cache_dir_for(folder)
    wanted = np.isin(train[1], known)
    train_files = [f for f, w in zip(train[0], wanted, strict=True) if w]
    pools: dict[str, Any] = {}
    for part, files, labels in (("train", train_files, train[1][wanted]), ("test", test[0], test[1])):
        # decoded at the side a centre crop (data.crop_pct) starts from, so each image is resized once
        side = resize_size(size, cfg.crop_pct)
        images = cached_images(files, root=folder, size=side, label=f"{name}-{part}", cache_dir=cache_dir)
        pools[part] = (images, labels)
    return build_osr(
        cfg,
        name=name,
        known=known,
        unknown=unknown,
        train=pools["train"],
        test_known=pools["test"],
        test_unknown=pools["test"],
        source_names=names,
        unknown_class_names=names,
        size=size,
        meta={"source_paths": [str(folder)], **ssb_meta(name, subsets)},
        unknown_subsets=subsets,
    )


@register_dataset("cub")
def load_cub(cfg: DataConfig, *, cache_dir: Path | None = None) -> OSRData:
    """CUB-200-2011 with the SSB's 100 known classes and Easy/Medium/Hard unknown classes."""
    root = default_root(cfg)
    folder = root / CUB_DIR
    check_layout("CUB-200-2011", folder, CUB_FILES, CUB_SOURCE, root)
    train, test, names = cub_pools(folder)
    return build_ssb(cfg, "cub", train, test, names, folder, cache_dir)


@register_dataset("aircraft")
def load_aircraft(cfg: DataConfig, *, cache_dir: Path | None = None) -> OSRData:
    """FGVC-Aircraft 2013b (variants) with the SSB's 50 known and Easy/Medium/Hard unknown classes."""
    root = default_root(cfg)
    folder = root / AIRCRAFT_DIR
    if cfg.download and not (folder / AIRCRAFT_FILES[0]).exists():
        from torchvision.datasets import FGVCAircraft

        try:
            FGVCAircraft(str(root), split="test", download=True)
        except (RuntimeError, OSError, ValueError) as e:
            raise DifairError(f"could not download FGVC-Aircraft into {root}: {one_line(e)}") from e
    check_layout(
        "FGVC-Aircraft 2013b", folder, AIRCRAFT_FILES, AIRCRAFT_SOURCE + " or --set data.download=true", root
    )
    train, test, names = aircraft_pools(root)
    return build_ssb(cfg, "aircraft", train, test, names, folder, cache_dir)


@register_dataset("scars")
def load_scars(cfg: DataConfig, *, cache_dir: Path | None = None) -> OSRData:
    """Stanford Cars with the SSB's 98 known classes and Easy/Medium/Hard unknown classes."""
    root = default_root(cfg)
    folder = root / SCARS_DIR
    check_layout("Stanford Cars", folder, SCARS_FILES, SCARS_SOURCE, root)
    train, test, names = scars_pools(root)
    return build_ssb(cfg, "scars", train, test, names, folder, cache_dir)
