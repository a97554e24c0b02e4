"""An offline open-set dataset from scikit-learn's ``load_digits`` (1,797 8x8 images; ships with scikit-learn).

Five fixed splits of 6 known and 4 unknown digits (the MNIST lists of the ARPL/Vaze family) and one fixed,
stratified 2/3 train, 1/3 test partition (seed 0). Images are upscaled to ``image_size`` (16 by default) and
framed as every other dataset's (``build_osr``: ``data.crop_pct``, normalisation, balancing).
"""

from __future__ import annotations

import numpy as np
import torch

from difair.config import DataConfig
from difair.data.base import OSRData
from difair.data.build import build_osr, image_size
from difair.data.registry import register_dataset
from difair.data.splits import get_known_classes, get_unknown_digits

DIGITS_TEST_FRACTION = 1 / 3
DIGITS_IMAGE_SIZE = 16
DIGIT_NAMES = [str(d) for d in range(10)]


@register_dataset("digits")
def load_digits(cfg: DataConfig) -> OSRData:
    """The digits split that ``cfg`` names (scikit-learn's 8x8 digits: offline, no files)."""
    from sklearn.datasets import load_digits as sklearn_digits  # start-up time: scikit-learn loads slowly
    from sklearn.model_selection import train_test_split

    known = get_known_classes("digits", cfg.split, family=cfg.split_family)
    digits = sklearn_digits()
    images = torch.from_numpy(
        np.clip(np.round(digits.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)[:, None]
    )
    labels = digits.target.astype(np.int64)
    idx_train, idx_test = train_test_split(
        np.arange(len(labels)), test_size=DIGITS_TEST_FRACTION, stratify=labels, random_state=0
    )
    test_pool = (images[torch.from_numpy(idx_test)], labels[idx_test])
    return build_osr(
        cfg,
        name="digits",
        known=known,
        unknown=get_unknown_digits("digits", cfg.split, family=cfg.split_family),
        train=(images[torch.from_numpy(idx_train)], labels[idx_train]),
        test_known=test_pool,
        test_unknown=test_pool,
        source_names=DIGIT_NAMES,
        unknown_class_names=DIGIT_NAMES,
        size=image_size(cfg, DIGITS_IMAGE_SIZE),
        meta={},
    )
