"""Scores from the per-class outputs (logits, or DIFAIR's stand-in for them): MSP, MaxLogit, Energy, Entropy, GEN.

Pure functions on tensors (higher = more likely known) and thin detectors over them; none needs a fit.
For DIFAIR the ``logits`` of a FeatureSet are minus the anchor distances (see ``difair_feature_set``), so ``mls``
on them is the paper's ``min_distance`` score; ``"NAME:class_activation"`` reads the per-class sums instead.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from difair.eval.posthoc.base import Detector, FeatureSet, register_detector
from difair.eval.scores import mls, msp

__all__ = ["energy", "neg_entropy", "gen", "OUTPUT_SCORES", "output_score"]


def energy(logits: Tensor, temperature: float = 1.0) -> Tensor:
    """Negative free energy ``T * logsumexp(logits / T)`` (Liu et al. 2020, Energy-based OOD detection)."""
    return temperature * torch.logsumexp(logits.double() / temperature, dim=1)


def neg_entropy(logits: Tensor) -> Tensor:
    """Minus the Shannon entropy of the softmax, ``sum_c p_c log p_c`` (computed from log-softmax, no clipping)."""
    logp = torch.log_softmax(logits.double(), dim=1)
    return (logp.exp() * logp).sum(dim=1)


def gen(logits: Tensor, gamma: float = 0.1, top_m: int | None = None) -> Tensor:
    """Minus the generalized entropy ``sum_{top-M} p^gamma (1 - p)^gamma`` (Liu et al. 2023, GEN, CVPR).

    ``top_m=None`` sums over all classes (the paper uses M=100 on ImageNet-1k); float64, no clipping.
    """
    p = torch.softmax(logits.double(), dim=1)
    if top_m is not None:
        p = p.topk(min(top_m, p.shape[1]), dim=1).values
    return -(p.pow(gamma) * (1.0 - p).pow(gamma)).sum(dim=1)


#: Output scores by name, each a function ``logits [n, C] -> scores [n]`` (higher = known).
OUTPUT_SCORES = {"msp": msp, "mls": mls, "energy": energy, "entropy": neg_entropy, "gen": gen}


def output_score(name: str) -> Callable[[Tensor], Tensor]:
    """The output-score function called ``name`` (for the activation-shaping detectors)."""
    if name not in OUTPUT_SCORES:
        raise ValueError(f"unknown output score {name!r}; choose from {', '.join(OUTPUT_SCORES)}")
    return OUTPUT_SCORES[name]


class _OutputDetector(Detector):
    """An output score on ``logits`` (or on another per-class tensor named by ``source``); no fit."""

    def _score(self, x: FeatureSet) -> Tensor:
        return OUTPUT_SCORES[self.name](x.get(self.source))


@register_detector("msp")
class MSP(_OutputDetector):
    """Maximum softmax probability (Hendrycks & Gimpel 2017, A baseline for detecting misclassified and OOD examples)."""


@register_detector("mls")
class MaxLogit(_OutputDetector):
    """Maximum logit (Hendrycks et al. 2022, Scaling OOD detection; Vaze et al. 2022 for open-set recognition)."""


@register_detector("energy")
class Energy(_OutputDetector):
    """Negative energy ``T logsumexp(logits / T)`` (Liu et al. 2020, Energy-based OOD detection); T = 1."""

    def __init__(self, source: str | None = None, temperature: float = 1.0) -> None:
        super().__init__(source)
        self.temperature = temperature

    def _score(self, x: FeatureSet) -> Tensor:
        return energy(x.get(self.source), self.temperature)


@register_detector("entropy")
class Entropy(_OutputDetector):
    """Minus the softmax entropy (the classic uncertainty baseline; e.g. Chan et al. 2021, Entropy maximization)."""


@register_detector("gen")
class GEN(_OutputDetector):
    """Generalized entropy (Liu et al. 2023, GEN: Pushing the limits of softmax-based OOD detection); gamma=0.1."""

    def __init__(self, source: str | None = None, gamma: float = 0.1, top_m: int | None = None) -> None:
        super().__init__(source)
        self.gamma, self.top_m = gamma, top_m

    def _score(self, x: FeatureSet) -> Tensor:
        return gen(x.get(self.source), self.gamma, self.top_m)
