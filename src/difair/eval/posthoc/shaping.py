"""Activation shaping composed with an output score: ReAct and ASH, through pytorch-ood.

Both change the head's input (``features[head_input]``, the pooled penultimate activations for a linear head),
recompute the outputs with ``FeatureSet.head`` and score them with an output score (energy by default, as in both
papers). They apply to any method whose FeatureSet carries its head (CE and CAC: the linear layer).
"""

from __future__ import annotations

from torch import Tensor

from difair.eval.posthoc.base import Detector, FeatureSet, register_detector, require_pytorch_ood
from difair.eval.posthoc.outputs import output_score

__all__ = ["ReAct", "ASH"]


class _Shaping(Detector):
    """Shared parts: the composed output score and the check that the FeatureSet has a head and its input."""

    default_source = "logits"

    def __init__(self, source: str | None = None, percentile: float = 0.9, output: str = "energy") -> None:
        super().__init__(source)
        if not 0.0 < percentile < 1.0:
            raise ValueError(f"percentile is a fraction in (0, 1), got {percentile}")
        self.percentile, self.output = percentile, output
        self._out = output_score(output)

    def unavailable(self, fs: FeatureSet) -> str | None:
        if fs.head is None or not fs.has(fs.head_input):
            return f"needs the head and its input features ({fs.head_input!r})"
        return None

    def _outlier(self, logits: Tensor) -> Tensor:  # pytorch-ood's detectors return higher = more OOD
        return -self._out(logits)


@register_detector("react")
class ReAct(_Shaping):
    """ReAct (Sun et al. 2021, ReAct: OOD detection with rectified activations, NeurIPS): clip the head's input at
    the ``percentile`` (0.9, the paper's) of all training activations, recompute the outputs, score them (energy).
    """

    needs_fit = True

    def _fit(self, train: FeatureSet) -> None:
        ood = require_pytorch_ood()
        self._det = ood.detector.ReAct(None, train.head, percentile=self.percentile, detector=self._outlier)
        self._det.fit_feature_maps(train.get(train.head_input).float(), train.labels)
        self.threshold = float(self._det.threshold)

    def _score(self, x: FeatureSet) -> Tensor:
        self._det.head = x.head
        return -self._det.predict_feature_maps(x.get(x.head_input).float())


@register_detector("ash")
class ASH(_Shaping):
    """ASH (Djurisic et al. 2023, Extremely simple activation shaping for OOD detection, ICLR): per sample, zero the
    lowest ``percentile`` (0.9, the paper's CIFAR setting) of the head's input, rescale the rest (``variant``
    ``ash-s``; ``ash-p`` prunes only, ``ash-b`` binarises), recompute the outputs and score them (energy). No fit.
    """

    def __init__(
        self,
        source: str | None = None,
        percentile: float = 0.9,
        output: str = "energy",
        variant: str = "ash-s",
    ) -> None:
        super().__init__(source, percentile, output)
        self.variant = variant

    def _score(self, x: FeatureSet) -> Tensor:
        ood = require_pytorch_ood()
        feats = x.get(x.head_input).float()
        flat = feats.dim() == 2  # pooled features go through pytorch-ood's 4-d code as [n, D, 1, 1]
        head = (lambda t: x.head(t.flatten(1))) if flat else x.head
        det = ood.detector.ASH(
            None, head, variant=self.variant, percentile=self.percentile, detector=self._outlier
        )
        return -det.predict_feature_maps(feats[:, :, None, None] if flat else feats)
