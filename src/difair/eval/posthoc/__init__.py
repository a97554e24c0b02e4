"""Post-hoc open-set detectors on extracted features (higher score = more likely known; fitted on known data only).

Importing this package registers every detector: output scores (msp, mls, energy, entropy, gen), feature scores
(knn, mahalanobis, rmd), activation shaping (react, ash), vim and odin. See docs/scores.md.
"""

from difair.eval.posthoc import features, odin, outputs, shaping, vim  # noqa: F401 - registers the detectors
from difair.eval.posthoc.base import (
    Detector,
    FeatureSet,
    available_detectors,
    build_detector,
    register_detector,
)
from difair.eval.posthoc.build import ALL_SCORES, difair_feature_set, logit_feature_set, resolve_scores
from difair.eval.posthoc.features import knn_scores
from difair.eval.posthoc.odin import odin_logits
from difair.eval.posthoc.outputs import energy, gen, neg_entropy

__all__ = [
    "ALL_SCORES",
    "Detector",
    "FeatureSet",
    "available_detectors",
    "build_detector",
    "difair_feature_set",
    "energy",
    "gen",
    "knn_scores",
    "logit_feature_set",
    "neg_entropy",
    "odin_logits",
    "register_detector",
    "resolve_scores",
]
