"""SVHN (cropped digits) open-set splits: 6 known digits, 4 unknown; 32x32 RGB.

Read with torchvision's ``SVHN`` from ``ROOT/svhn/{train,test}_32x32.mat`` (the official MATLAB files: ``X``
uint8 ``[32, 32, 3, N]``, ``y`` ``[N, 1]`` with 10 for digit 0). "extra" is unused, as in the papers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from difair.config import DataConfig
from difair.data.base import OSRData
from difair.data.build import build_osr, image_size, load_failure, missing_dataset
from difair.data.mnist import DIGIT_NAMES
from difair.data.registry import register_dataset
from difair.data.root import default_root
from difair.data.splits import get_known_classes, get_unknown_digits
from difair.errors import DifairError

SVHN_IMAGE_SIZE = 32
SVHN_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}


def svhn_dir(root: Path) -> Path:
    """Where the SVHN .mat files are looked for under the data root."""
    return Path(root) / "svhn"


def load_svhn_arrays(
    folder: Path, split: str, *, download: bool = False, verify: bool = True
) -> tuple[torch.Tensor, np.ndarray]:
    """Images uint8 ``[N, 3, 32, 32]`` and digit labels 0-9 of one SVHN split (``train`` or ``test``)."""
    if not (folder / SVHN_FILES[split]).is_file() and not download:
        raise missing_dataset(f"SVHN {SVHN_FILES[split]}", folder)
    from difair.data.torchvision_sets import CheckedSVHN  # start-up time: torchvision.datasets takes ~2 s

    try:
        ds = CheckedSVHN(str(folder), split, download=download, verify=verify)
    except (RuntimeError, OSError, ValueError, KeyError) as e:
        raise load_failure("SVHN", folder / SVHN_FILES[split], e) from e
    labels = np.asarray(ds.labels, dtype=np.int64)
    if (
        labels.size and not 0 <= labels.min() <= labels.max() <= 9
    ):  # torchvision maps the file's 10 to digit 0
        raise DifairError(
            f"{folder / SVHN_FILES[split]} holds labels outside 1..10 (the file's digit labels): restore the "
            "official file"
        )
    return torch.from_numpy(np.ascontiguousarray(ds.data)), labels


@register_dataset("svhn")
def load_svhn(cfg: DataConfig, *, verify: bool = True) -> OSRData:
    """The SVHN split ``cfg.split`` of family ``cfg.split_family``; ``verify`` checks the md5 sums."""
    folder = svhn_dir(default_root(cfg))
    train = load_svhn_arrays(folder, "train", download=cfg.download, verify=verify)
    test = load_svhn_arrays(folder, "test", download=cfg.download, verify=verify)
    known = get_known_classes("svhn", cfg.split, family=cfg.split_family)
    return build_osr(
        cfg,
        name="svhn",
        known=known,
        unknown=get_unknown_digits("svhn", cfg.split, family=cfg.split_family),
        train=train,
        test_known=test,
        test_unknown=test,
        source_names=DIGIT_NAMES,
        unknown_class_names=DIGIT_NAMES,
        size=image_size(cfg, SVHN_IMAGE_SIZE),
        meta={"source_paths": [str(folder / SVHN_FILES["train"]), str(folder / SVHN_FILES["test"])]},
    )
