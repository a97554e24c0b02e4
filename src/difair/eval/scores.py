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
    return DF.anchor_distances(z.float(), anchors).argmin(dim=1)


def difair_min_distance(z: Tensor, anchors: Tensor) -> Tensor:
    """The paper's score: minus the distance to the nearest anchor."""
    return -DF.anchor_distances(z.float(), anchors).min(dim=1).values


def difair_class_activation(z: Tensor, features_per_class: int) -> Tensor:
    """Largest sum of one class's N features."""
    return DF.class_activations(z.float(), features_per_class).max(dim=1).values


def max_activation(z: Tensor) -> Tensor:
    """Largest single feature (the authors' logged 'max_val_auroc' score)."""
    return z.float().max(dim=1).values


def msp(logits: Tensor) -> Tensor:
    """Maximum softmax probability."""
    return torch.softmax(logits.float(), dim=1).max(dim=1).values


def mls(logits: Tensor) -> Tensor:
    """Maximum logit (Vaze et al.)."""
    return logits.float().max(dim=1).values


def cac_score(logits: Tensor, anchors: Tensor, normalize: str = "sample") -> Tensor:
    """Minus CAC's smallest rejection score ``min_c d_c (1 - softmin(d)_c)``."""
    d = DF.anchor_distances(logits.float(), anchors)
    return -DF.cac_rejection_score(d, normalize=normalize).min(dim=1).values
