"""Open-set scores, metrics and result tables."""

from difair.eval.metrics import (
    aupr_in,
    aupr_out,
    auroc,
    closed_set_accuracy,
    fpr_at_tpr,
    oscr,
    osr_metrics,
)
from difair.eval.scores import (
    cac_score,
    difair_class_activation,
    difair_min_distance,
    max_activation,
    mls,
    msp,
    nearest_anchor,
)

__all__ = [
    "aupr_in",
    "aupr_out",
    "auroc",
    "closed_set_accuracy",
    "fpr_at_tpr",
    "osr_metrics",
    "oscr",
    "cac_score",
    "difair_class_activation",
    "difair_min_distance",
    "max_activation",
    "mls",
    "msp",
    "nearest_anchor",
]
