"""An offline open-set dataset from scikit-learn's ``load_digits`` (1,797 8x8 images; ships with scikit-learn).

Five fixed splits of 6 known and 4 unknown digits (the MNIST lists of the ARPL/Vaze family) and one fixed,
stratified 2/3 train, 1/3 test partition (seed 0). Images are upscaled to ``image_size`` (16 by default).
"""

from __future__ import annotations

import numpy as np
import torch

from difair.config import DataConfig
from difair.data.base import OSRData, Part, assemble, resize_uint8, select_known
from difair.data.registry import register_dataset
from difair.data.splits import get_known_classes
from difair.errors import DifairError

DIGITS_TEST_FRACTION = 1 / 3
DIGITS_IMAGE_SIZE = 16


def load_digits_osr(
    split: int = 0,
    *,
    image_size: int | None = None,
    balance: str = "without_replacement",
    balance_seed: int = 0,
    split_family: str = "vaze",
    normalization: str = "train",
) -> OSRData:
    """The digits OSR split ``split`` (0-4): 6 known digits from the MNIST split lists, 4 unknown."""
    if normalization == "reference":  # the authors published constants for their datasets only
        raise DifairError(
            f"no {normalization} normalisation constants for 'digits': use --set data.normalization=train"
        )
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    known = get_known_classes("digits", split, family=split_family)
    digits = load_digits()
    images = np.clip(np.round(digits.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)[:, None]
    labels = digits.target.astype(np.int64)
    idx_train, idx_test = train_test_split(
        np.arange(len(labels)), test_size=DIGITS_TEST_FRACTION, stratify=labels, random_state=0
    )
    size = image_size or DIGITS_IMAGE_SIZE
    x = resize_uint8(torch.from_numpy(images), size)

    tr_mask, tr_labels = select_known(labels[idx_train], known)
    te_mask, te_labels = select_known(labels[idx_test], known)
    train_idx = idx_train[tr_mask]
    known_idx, unknown_idx = idx_test[te_mask], idx_test[~te_mask]
    return assemble(
        "digits",
        split,
        [str(c) for c in known],
        Part(x[torch.as_tensor(train_idx)], tr_labels),
        Part(x[torch.as_tensor(known_idx)], te_labels, labels[known_idx]),
        Part(x[torch.as_tensor(unknown_idx)], source=labels[unknown_idx]),
        balance=balance,
        balance_seed=balance_seed,
        unknown_class_names=[str(c) for c in range(10)],
        meta={
            "split_family": split_family,
            "normalization": "train" if normalization == "auto" else normalization,
            "known_source_classes": known,
            "unknown_source_classes": sorted(set(range(10)) - set(known)),
        },
    )


@register_dataset("digits")
def load_digits(cfg: DataConfig) -> OSRData:
    """The digits split that ``cfg`` names (scikit-learn's 8x8 digits: offline, no files)."""
    return load_digits_osr(
        cfg.split,
        image_size=cfg.image_size,
        balance=cfg.balance,
        balance_seed=cfg.balance_seed,
        split_family=cfg.split_family,
        normalization=cfg.normalization,
    )
