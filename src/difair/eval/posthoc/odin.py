"""ODIN for models with logits: perturbed inputs at a temperature, extracted once into ``features["odin"]``.

ODIN needs the model and its inputs (a gradient step on each input), so it cannot run on cached features; the
extraction (``difair.eval.extraction.extract``) calls ``odin_logits`` per batch and the detector scores the result.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from difair.eval.posthoc.base import Detector, FeatureSet, register_detector, require_pytorch_ood
from difair.eval.scores import msp

__all__ = ["odin_logits", "ODIN", "ODIN_DEFAULTS"]

#: The paper's CIFAR values (T = 1000, eps = 0.0014); the paper tunes them on OOD data, which difair does not.
ODIN_DEFAULTS = {"temperature": 1000.0, "eps": 0.0014}


def odin_logits(
    model: Callable[[Tensor], Tensor],
    x: Tensor,
    temperature: float = ODIN_DEFAULTS["temperature"],
    eps: float = ODIN_DEFAULTS["eps"],
    norm_std: Sequence[float] | None = None,
) -> Tensor:
    """``model(x_hat) / T`` with ``x_hat = x - eps * sign(grad_x CE(model(x) / T, argmax))``, via pytorch-ood.

    ``norm_std`` (per channel) divides the sign so that ``eps`` is in the unnormalised pixel scale.
    """
    ood = require_pytorch_ood()
    x_hat = ood.detector.odin_preprocessing(
        model, x, eps=eps, temperature=temperature, norm_std=list(norm_std) if norm_std else None
    )
    with torch.no_grad():
        return (model(x_hat) / temperature).float()


@register_detector("odin")
class ODIN(Detector):
    """ODIN (Liang et al. 2018, Enhancing the reliability of OOD image detection in neural networks, ICLR): the
    maximum softmax of the temperature-scaled logits of the perturbed input. No fit; T and eps in ``ODIN_DEFAULTS``.
    """

    default_source = "odin"

    def unavailable(self, fs: FeatureSet) -> str | None:
        if not fs.has(self.source):
            return "needs the model and its inputs (extract with odin=True; methods with logits only)"
        return None

    def _score(self, x: FeatureSet) -> Tensor:
        return msp(x.get(self.source))
