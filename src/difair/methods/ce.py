"""Cross-entropy baseline: argmax prediction; MSP and MLS scores (its options and method)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from difair.errors import DifairError, check_choice
from difair.eval import scores as S
from difair.methods.base import Method, register_method
from difair.nn.functional import LABEL_SMOOTHING_FORMS, smoothed_cross_entropy
from difair.nn.heads import LinearHead


@dataclass
class CEConfig:
    """Options of the cross-entropy baseline (the ``ce`` section of the run config)."""

    label_smoothing: float = 0.0
    # pytorch: true class 1 - s + s/C, others s/C (F.cross_entropy) | vaze: true class 1 - s, others s/(C-1)
    label_smoothing_form: str = "pytorch"

    def validate(self) -> None:
        if not 0 <= self.label_smoothing < 1:
            raise DifairError("ce.label_smoothing must be in [0, 1)")
        check_choice("ce.label_smoothing_form", self.label_smoothing_form, LABEL_SMOOTHING_FORMS)


@register_method
class CEMethod(Method):
    """Cross-entropy on a linear logit head."""

    name = "ce"
    default_score = "mls"
    score_names = ("msp", "mls")
    per_class_kind = "probability"
    options: CEConfig

    def build_head(self, in_channels: int) -> nn.Module:
        return LinearHead(in_channels, self.num_classes)

    def loss_terms(
        self, outputs: Tensor, target: Tensor, head: nn.Module, scale: float = 1.0
    ) -> dict[str, Tensor]:
        loss = smoothed_cross_entropy(
            outputs.float(), target, self.options.label_smoothing, self.options.label_smoothing_form
        )
        return {"loss": loss * scale}

    def predict(self, outputs: Tensor, head: nn.Module) -> Tensor:
        return outputs.argmax(dim=1)

    def scores(self, outputs: Tensor, head: nn.Module) -> dict[str, Tensor]:
        return {"msp": S.msp(outputs), "mls": S.mls(outputs)}

    def per_class(self, outputs: Tensor, head: nn.Module) -> Tensor:
        return torch.softmax(outputs, dim=1)
