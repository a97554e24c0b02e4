"""Per-channel normalisation constants: the split's own training statistics, or the DIFAIR authors' constants.

``data.normalization=auto`` (default): ``pretrained`` for a pretrained backbone, else ``train``.
``data.normalization=pretrained``: the backbone's pretrained mean and std (set on the model, not here).
``data.normalization=train``: mean and std of the split's training images on [0, 1] pixels.
``data.normalization=reference``: the constants hard-coded in the authors' ``datasets/splits/osr_splits.py``
(reference-notes section 8.3). They store a mean and a *variance*; Keras' ``Normalization`` layer divides by
``sqrt(variance)``, so std = sqrt(value) here too.
"""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor

from difair.config import NORMALIZATIONS, DataConfig
from difair.data.base import channel_stats
from difair.data.splits import get_known_classes
from difair.errors import DifairError

_CIFAR10_MEANS = [
    [0.4898587, 0.48060894, 0.4424159],
    [0.4898587, 0.48060894, 0.4424159],
    [0.48981622, 0.46766308, 0.42541358],
    [0.49295485, 0.49064583, 0.47182837],
    [0.48378143, 0.46913853, 0.41493976],
]
_CIFAR10_VARS = [
    [0.06126362, 0.06001796, 0.06984805],
    [0.06126362, 0.06001796, 0.06984805],
    [0.06328715, 0.06151306, 0.06617628],
    [0.06371225, 0.06276005, 0.07345987],
    [0.05917137, 0.05731499, 0.06365602],
]
_CIFAR_PLUS = ([0.49642983, 0.5063898, 0.51721925], [0.06754102, 0.06635283, 0.07538214])
# The authors entered SVHN's standard deviations (~0.198) in the variance slot; Keras then divides by
# sqrt(0.198) ~ 0.445. We reproduce that effective divisor: std = sqrt(value), like every other entry.
_SVHN = ([0.4377, 0.4438, 0.4728], [0.1980, 0.2010, 0.1970])

# dataset -> per split (mean, variance), on [0, 1] pixels
REFERENCE_MEAN_VAR: dict[str, list[tuple[list[float], list[float]]]] = {
    "mnist": [
        ([0.1357], [0.09739873]),
        ([0.14090382], [0.10117427]),
        ([0.13819146], [0.09905109]),
        ([0.13822709], [0.09929745]),
        ([0.13702373], [0.0984771]),
    ],
    "svhn": [_SVHN] * 5,
    "cifar10": list(zip(_CIFAR10_MEANS, _CIFAR10_VARS, strict=True)),
    "cifar+10": [_CIFAR_PLUS] * 5,
    "cifar+50": [_CIFAR_PLUS] * 5,
    "tinyimagenet": [
        ([0.47541523, 0.44702694, 0.4026736], [0.07662108, 0.07449844, 0.07999679]),
        ([0.48255503, 0.45423204, 0.39971313], [0.07501277, 0.07167984, 0.07835567]),
        ([0.4771495, 0.45703092, 0.41323453], [0.0774068, 0.07507991, 0.08436972]),
        ([0.48007926, 0.44863188, 0.39478093], [0.07526458, 0.07246085, 0.0787185]),
        ([0.4643234, 0.42005086, 0.36253068], [0.07833668, 0.07275151, 0.07406835]),
    ],
}


def reference_stats(dataset: str, split: int) -> tuple[list[float], list[float]]:
    """The DIFAIR authors' (mean, std) for ``dataset``'s split, std = sqrt(their stored variance)."""
    if dataset not in REFERENCE_MEAN_VAR:
        raise DifairError(
            f"no reference normalisation constants for {dataset!r}: use --set data.normalization=train"
        )
    table = REFERENCE_MEAN_VAR[dataset]
    if not 0 <= split < len(table):
        raise DifairError(f"no reference normalisation constants for {dataset} split {split}: choose 0 to 4")
    mean, var = table[split]
    return list(mean), [round(math.sqrt(v), 8) for v in var]


def authors_class_set(cfg: DataConfig, dataset: str, known: list[int]) -> bool:
    """Whether ``known`` is the class set the authors computed their constants on (their split lists)."""
    if dataset == "tinyimagenet" and cfg.tinyimagenet_order != "wnids":
        return False
    authors = get_known_classes(dataset, cfg.split, family="vaze", cifar_plus_known="vehicles")
    return sorted(authors) == sorted(known)


def resolve_normalization(
    cfg: DataConfig, dataset: str, train_images: Tensor, known: list[int]
) -> tuple[list[float], list[float], dict[str, Any]]:
    """Mean, std and the meta entries recording the choice, per ``cfg.normalization``.

    ``pretrained`` (and ``auto``, which a run's config resolves from its backbone) keeps the split's training
    statistics here: a dataset knows no backbone, and the model normalises with its pretrained mean/std
    (``difair.engine.build.build_model``).
    """
    if cfg.normalization in ("train", "auto", "pretrained"):
        mean, std = channel_stats(train_images)
        return mean, std, {"normalization": "train" if cfg.normalization == "auto" else cfg.normalization}
    if cfg.normalization != "reference":
        raise DifairError(
            f"unknown data.normalization {cfg.normalization!r}: choose {', '.join(NORMALIZATIONS)}"
        )
    mean, std = reference_stats(dataset, cfg.split)
    if len(mean) != train_images.shape[1]:
        raise DifairError(
            f"reference constants for {dataset} have {len(mean)} channels, the images {train_images.shape[1]}"
        )
    # The constants belong to the authors' class sets; say so when this split selects other classes.
    return (
        mean,
        std,
        {
            "normalization": "reference",
            "normalization_matches_classes": authors_class_set(cfg, dataset, known),
        },
    )
