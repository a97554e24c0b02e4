"""MNIST open-set splits: 6 known digits, 4 unknown; 1 channel, resized 28 -> 32 (as the DIFAIR authors do).

Read with torchvision's ``MNIST`` from ``ROOT/MNIST/raw/*-ubyte`` (``data.download=true`` fetches them).
Train: the 60,000 training images of the known digits; test: the 10,000 test images, known then unknown.
"""

from __future__ import annotations

import numpy as np

from difair.config import DataConfig
from difair.data.base import OSRData
from difair.data.build import build_osr, image_size, missing_dataset, one_line
from difair.data.registry import register_dataset
from difair.data.root import default_root
from difair.data.splits import get_known_classes, get_unknown_digits
from difair.errors import DifairError

MNIST_IMAGE_SIZE = 32
MNIST_RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
DIGIT_NAMES = [str(d) for d in range(10)]


@register_dataset("mnist")
def load_mnist(cfg: DataConfig) -> OSRData:
    """The MNIST split ``cfg.split`` of family ``cfg.split_family``."""
    from torchvision.datasets import MNIST

    root = default_root(cfg)
    raw = root / "MNIST" / "raw"
    if not all((raw / f).is_file() for f in MNIST_RAW_FILES) and not cfg.download:
        raise missing_dataset("MNIST", raw, prepared=True)
    try:
        train = MNIST(str(root), train=True, download=cfg.download)
        test = MNIST(str(root), train=False, download=cfg.download)
    except (RuntimeError, OSError, ValueError) as e:
        raise DifairError(f"could not load MNIST from {raw}: {one_line(e)}") from e
    known = get_known_classes("mnist", cfg.split, family=cfg.split_family)
    unknown = get_unknown_digits("mnist", cfg.split, family=cfg.split_family)
    test_pool = (test.data[:, None], test.targets.numpy().astype(np.int64))
    return build_osr(
        cfg,
        name="mnist",
        known=known,
        unknown=unknown,
        train=(train.data[:, None], train.targets.numpy().astype(np.int64)),
        test_known=test_pool,
        test_unknown=test_pool,
        source_names=DIGIT_NAMES,
        unknown_class_names=DIGIT_NAMES,
        size=image_size(cfg, MNIST_IMAGE_SIZE),
        meta={"source_paths": [str(raw)]},
    )
