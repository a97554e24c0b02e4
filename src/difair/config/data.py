"""The ``data`` section of the run configuration and the dataset names it takes (``folder:PATH``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from difair.errors import DifairError, check_choice

SPLIT_FAMILIES = ("vaze", "neal")  # data.split_family: the split lists of difair.data.splits
BALANCE_MODES = ("without_replacement", "with_replacement", "none")  # data.balance: data.base.balance_indices
TINYIMAGENET_ORDERS = ("sorted", "wnids")  # data.tinyimagenet_order: difair.data.tinyimagenet
CIFAR_PLUS_KNOWN = ("split", "vehicles")  # data.cifar_plus_known: difair.data.splits.get_known_classes
NORMALIZATIONS = ("auto", "train", "reference", "pretrained")  # data.normalization
MIN_IMAGE_SIZE = 4  # the smallest input the backbones' strided convolutions take
MAX_IMAGE_SIZE = 448  # the largest data.image_size accepted (full-resolution transfer: docs/transfer.md)
CACHES = ("auto", "memory", "stream")  # data.cache: difair.data.folder.resolve_cache
MEMORY_BUDGET_FRACTION = 0.5  # data.memory_budget_gb=null: this fraction of the RAM available at the start


@dataclass
class DataConfig:
    """The ``data`` section: which dataset and split, how its test set is balanced and its images framed and
    normalised, and how a folder's images are held (every option: docs/configuration.md)."""

    name: str = "digits"
    split: int = 0
    root: str | None = None  # None: $DIFAIR_DATA, else ~/.cache/difair-data
    image_size: int | None = None  # None: the dataset's own size
    split_family: str = "vaze"  # vaze (ARPL/Vaze/DIFAIR lists) | neal (Neal et al./CAC lists)
    tinyimagenet_order: str = (
        "sorted"  # sorted wnids (Vaze) | wnids (wnids.txt line order, the DIFAIR authors)
    )
    # vehicles ([0,1,8,9]: the paper's Neal et al. setting, and the authors' code) | split (per-split lists, Vaze)
    cifar_plus_known: str = "vehicles"
    balance: str = "without_replacement"  # without_replacement | with_replacement | none
    balance_seed: int = 0
    val_fraction: float = (
        0.0  # known training images held out for calibration (0: the paper, whole train set)
    )
    val_seed: int = 0
    # auto (pretrained when the backbone is, else train) | train (statistics of the split's training images) |
    # reference (authors' constants) | pretrained (the backbone's pretrained mean/std)
    normalization: str = "auto"
    crop_pct: float | None = (
        None  # resize to size/crop_pct, centre crop size; None: the backbone's when pretrained, else 1
    )
    known: list[str] | None = None  # folder:PATH datasets: known class names (or indices as strings)
    download: bool = False
    # folder:PATH training images: auto (memory when the decoded pixels fit data.memory_budget_gb, else stream) |
    # memory (the decode-once cache, resident) | stream (decoded per batch in data.workers processes)
    cache: str = "auto"
    memory_budget_gb: float | None = None  # None: MEMORY_BUDGET_FRACTION of the available RAM
    # stream mode's decoding processes; None: min(8, the process's CPU share - 1), 0: in the loop
    workers: int | None = None

    def validate(self) -> None:
        check_choice("data.split_family", self.split_family, SPLIT_FAMILIES)
        check_choice("data.tinyimagenet_order", self.tinyimagenet_order, TINYIMAGENET_ORDERS)
        check_choice("data.cifar_plus_known", self.cifar_plus_known, CIFAR_PLUS_KNOWN)
        check_choice("data.balance", self.balance, BALANCE_MODES)
        check_choice("data.normalization", self.normalization, NORMALIZATIONS)
        if self.crop_pct is not None and not 0 < self.crop_pct <= 1:
            raise DifairError(
                f"data.crop_pct must be in (0, 1], got {self.crop_pct}: 1 keeps the whole image"
            )
        if not 0 <= self.val_fraction < 1:
            raise DifairError(f"data.val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.split < 0:
            raise DifairError(f"data.split must be >= 0, got {self.split}")
        folder = is_folder(self.name)
        if self.known is not None and not folder:
            raise DifairError(
                f"data.known applies to folder:PATH datasets; {self.name}'s known classes come from its split "
                "lists: choose them with --split (data.split)"
            )
        if folder and self.split != 0:
            raise DifairError(
                "a folder:PATH dataset has one split, set by data.known: drop --split (data.split)"
            )
        if self.image_size is not None and self.image_size < MIN_IMAGE_SIZE:
            raise DifairError(
                f"data.image_size must be >= {MIN_IMAGE_SIZE}, got {self.image_size}: leave it unset for the dataset's own size"
            )
        if self.image_size is not None and self.image_size > MAX_IMAGE_SIZE:
            raise DifairError(
                f"data.image_size must be <= {MAX_IMAGE_SIZE}, got {self.image_size}: choose a size up to {MAX_IMAGE_SIZE}"
            )
        check_choice("data.cache", self.cache, CACHES)
        if self.cache == "stream" and not folder:
            raise DifairError(
                f"data.cache=stream applies to folder:PATH datasets; {self.name} is loaded whole: drop data.cache"
            )
        if self.memory_budget_gb is not None and not (
            math.isfinite(self.memory_budget_gb) and self.memory_budget_gb > 0
        ):
            raise DifairError(f"data.memory_budget_gb must be a number > 0, got {self.memory_budget_gb}")
        if self.workers is not None and (not isinstance(self.workers, int) or self.workers < 0):
            raise DifairError(f"data.workers must be a whole number >= 0, got {self.workers!r}")


FOLDER_PREFIX = "folder:"  # data.name of an image folder of your own: folder:PATH


def is_folder(name: str) -> bool:
    """Whether the dataset name ``name`` names an image folder (``folder:PATH``)."""
    return str(name).startswith(FOLDER_PREFIX)


def folder_path(name: str, root: str | None = None) -> Path:
    """The PATH of a ``folder:PATH`` dataset name; a relative PATH is taken under ``root`` (``data.root``, which a
    run records as the working directory it started in) when given, else under the working directory."""
    text = name[len(FOLDER_PREFIX) :].strip() if is_folder(name) else ""
    if not text:
        raise DifairError(
            f"a folder dataset is named folder:PATH, got {name!r}: e.g. --set data.name=folder:/data/pets"
        )
    path = Path(text).expanduser()
    return Path(root).expanduser() / path if root and not path.is_absolute() else path
