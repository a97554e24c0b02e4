"""Open-set scores (higher = more likely known) and closed-set predictions, built on the functional core."""

from __future__ import annotations

import torch
from torch import Tensor

from difair.nn import functional as DF

__all__ = [
    "difair_min_distance",
    "difair_class_activation",
    "max_activation",
    "msp",
    "mls",
    "cac_score",
    "nearest_anchor",
]


def nearest_anchor(z: Tensor, anchors: Tensor) -> Tensor:
    """Closed-set prediction of DIFAIR (and CAC on distances): index of the nearest anchor."""
    return DF.anchor_distances(DF.widen(z), anchors).argmin(dim=1)


def difair_min_distance(z: Tensor, anchors: Tensor) -> Tensor:
    """The paper's score: minus the distance to the nearest anchor."""
    return -DF.anchor_distances(DF.widen(z), anchors).min(dim=1).values


def difair_class_activation(z: Tensor, features_per_class: int) -> Tensor:
    """Largest sum of one class's N features."""
    return DF.class_activations(DF.widen(z), features_per_class).max(dim=1).values


def max_activation(z: Tensor) -> Tensor:
    """Largest single feature (the authors' logged 'max_val_auroc' score)."""
    return DF.widen(z).max(dim=1).values


def msp(logits: Tensor) -> Tensor:
    """Maximum softmax probability."""
    return torch.softmax(DF.widen(logits), dim=1).max(dim=1).values


def mls(logits: Tensor) -> Tensor:
    """Maximum logit (Vaze et al.)."""
    return DF.widen(logits).max(dim=1).values


def cac_score(logits: Tensor, anchors: Tensor, normalize: str = "sample") -> Tensor:
    """Minus CAC's smallest rejection score ``min_c d_c (1 - softmin(d)_c)``."""
    d = DF.anchor_distances(DF.widen(logits), anchors)
    return -DF.cac_rejection_score(d, normalize=normalize).min(dim=1).values
