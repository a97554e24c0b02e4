"""Open-set scores, metrics and result tables; ``evaluate`` runs every post-hoc score on any model and data."""

from difair.eval.api import ScoreTable, evaluate  # after scores: the detectors build on them
from difair.eval.extraction import extract
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
    "ScoreTable",
    "evaluate",
    "extract",
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
