"""FeatureSets from a method's outputs, and the list of scores that ``"all"`` stands for.

DIFAIR's stand-in for logits is minus the Euclidean distances to the class anchors: its argmax is DIFAIR's
prediction (the nearest anchor) and its max is the paper's ``min_distance`` score, so MSP, MaxLogit, Energy, Entropy
and GEN read the same geometry as the method. The per-class activation sums (``features["class_activation"]``)
are a second, separate source: ``"msp:class_activation"`` and so on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor

from difair.eval.posthoc.base import FeatureSet, build_detector
from difair.nn import functional as DF

__all__ = ["difair_feature_set", "logit_feature_set", "ALL_SCORES", "resolve_scores"]

#: What ``scores="all"`` asks for, in table order; those a FeatureSet cannot serve are skipped with a reason.
ALL_SCORES: tuple[str, ...] = (
    "msp",
    "mls",
    "energy",
    "entropy",
    "gen",
    "msp:class_activation",
    "mls:class_activation",
    "energy:class_activation",
    "knn",
    "knn:z",
    "mahalanobis",
    "mahalanobis:z",
    "rmd",
    "rmd:z",
    "react",
    "ash",
    "vim",
    "odin",
)


def resolve_scores(scores: str | Sequence[str]) -> list[str]:
    """``"all"``, ``"msp,knn"`` or a list of names, as a list of score specs (each checked by building it)."""
    specs = (
        list(ALL_SCORES)
        if scores == "all"
        else scores.split(",")
        if isinstance(scores, str)
        else list(scores)
    )
    specs = [s.strip() for s in specs if s.strip()]
    for s in specs:
        build_detector(s)
    return specs


def difair_feature_set(
    z: Tensor,
    labels: Tensor,
    anchors: Tensor,
    features_per_class: int,
    pooled: Tensor | None = None,
    *,
    maps: Tensor | None = None,
    head: Callable[[Tensor], Tensor] | None = None,
) -> FeatureSet:
    """A DIFAIR FeatureSet: logits = minus anchor distances, features z, class_activation (and pooled if given).

    ReAct and ASH need the head's input, the backbone feature maps ``maps`` [n, C, h, w], and ``head`` (a
    ``DifairHead``): the FeatureSet's head is then ``maps -> -anchor_distances(head(maps))``.
    """
    z = z.float()
    features = {"z": z, "class_activation": DF.class_activations(z, features_per_class)}
    if pooled is not None:
        features["pooled"] = pooled.float()
    logit_head = None
    if maps is not None and head is not None:
        features["maps"] = maps.float()
        logit_head = lambda m: -DF.anchor_distances(head(m).float(), anchors)  # noqa: E731
    return FeatureSet(
        logits=-DF.anchor_distances(z, anchors),
        labels=labels,
        features=features,
        head=logit_head,
        head_input="maps",
    )


def logit_feature_set(
    logits: Tensor,
    labels: Tensor,
    pooled: Tensor | None = None,
    *,
    preds: Tensor | None = None,
    head: Callable[[Tensor], Tensor] | None = None,
    linear: tuple[Tensor, Tensor | None] | None = None,
) -> FeatureSet:
    """A FeatureSet for a logit head (CE, CAC, any classifier): z = logits; pooled = the head's input if given."""
    features = {"z": logits.float()}
    if pooled is not None:
        features["pooled"] = pooled.float()
    return FeatureSet(
        logits=logits.float(), labels=labels, features=features, preds=preds, head=head, linear=linear
    )
