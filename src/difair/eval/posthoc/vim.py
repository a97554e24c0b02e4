"""ViM, virtual-logit matching, for methods whose head is linear (CE, CAC), through pytorch-ood."""

from __future__ import annotations

import torch
from torch import Tensor

from difair.eval.posthoc.base import Detector, FeatureSet, register_detector, require_pytorch_ood

__all__ = ["ViM"]


@register_detector("vim")
class ViM(Detector):
    """ViM (Wang et al. 2022, ViM: Out-of-distribution with virtual-logit matching, CVPR): energy of the logits minus
    alpha times the norm of the head input's residual outside its top-``d`` principal subspace (origin ``-W^+ b``).

    Fitted on training features: the subspace and alpha (mean max-logit / mean residual norm). ``d=None`` takes
    half the feature dimension (OpenOOD's 256 for a 512-d ResNet-18; the paper uses 1000 of 2048 on ImageNet).
    """

    needs_fit = True

    def __init__(self, source: str | None = None, d: int | None = None) -> None:
        super().__init__(source)
        self.d = d

    def unavailable(self, fs: FeatureSet) -> str | None:
        if fs.linear is None or not fs.has(fs.head_input):
            return f"needs a linear head (W, b) and its input features ({fs.head_input!r})"
        return None

    def _fit(self, train: FeatureSet) -> None:
        ood = require_pytorch_ood()
        w, b = train.linear
        x = train.get(train.head_input).float()
        b = torch.zeros(w.shape[0], device=w.device) if b is None else b
        d = self.d if self.d is not None else x.shape[1] // 2
        self._det = ood.detector.ViM(None, d=d, w=w.detach().to(x.device), b=b.detach().to(x.device))
        self._det.fit_features(x, train.labels)

    def _score(self, x: FeatureSet) -> Tensor:
        return -self._det.predict_features(x.get(x.head_input).float())
