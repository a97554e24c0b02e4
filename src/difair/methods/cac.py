"""Class Anchor Clustering (Miller et al. 2021) on a linear logit head (its options and method)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from difair.errors import DifairError, check_choice
from difair.eval import scores as S
from difair.methods.base import Method, register_method
from difair.nn import functional as DF
from difair.nn.heads import CACHead
from difair.nn.losses import CACLoss


@dataclass
class CACConfig:
    """Options of CAC (the ``cac`` section of the run config)."""

    alpha: float = 10.0
    lambda_: float = 0.1
    tuplet_includes_target: bool = False  # True: the authors' code (log(2 + ...))
    rejection_softmin: str = "sample"  # sample (CAC) | global (the authors' code)
    recenter: bool = True  # replace anchors by class means of correct training logits before evaluation

    def validate(self) -> None:
        if not self.alpha > 0:
            raise DifairError(f"cac.alpha must be > 0, got {self.alpha}: CAC uses 10")
        check_choice("cac.rejection_softmin", self.rejection_softmin, DF.CAC_SOFTMIN)


@register_method
class CACMethod(Method):
    """CAC: logits pulled to fixed anchors ``alpha * e_c``; evaluated with re-centred anchors (``recenter``)."""

    name = "cac"
    default_score = "cac"
    score_names = ("cac", "min_distance")
    per_class_kind = "distance"
    options: CACConfig

    def __init__(self, options: CACConfig, num_classes: int):
        super().__init__(options, num_classes)
        self.loss_fn = CACLoss(num_classes, options.alpha, options.lambda_, options.tuplet_includes_target)

    def build_head(self, in_channels: int) -> nn.Module:
        return CACHead(in_channels, self.num_classes, self.options.alpha)

    def anchors(self, head: nn.Module) -> Tensor:
        return head.anchors.float()

    def loss_terms(
        self, outputs: Tensor, target: Tensor, head: nn.Module, scale: float = 1.0
    ) -> dict[str, Tensor]:
        self.loss_fn.to(outputs.device)
        return {"loss": self.loss_fn(outputs, target) * scale}

    def predict(self, outputs: Tensor, head: nn.Module) -> Tensor:
        d = head.distances(outputs)
        return DF.cac_rejection_score(d, normalize=self.options.rejection_softmin).argmin(dim=1)

    def scores(self, outputs: Tensor, head: nn.Module) -> dict[str, Tensor]:
        anchors = self.anchors(head)
        return {
            "cac": S.cac_score(outputs, anchors, self.options.rejection_softmin),
            "min_distance": S.difair_min_distance(outputs, anchors),
        }

    def per_class(self, outputs: Tensor, head: nn.Module) -> Tensor:
        return head.distances(outputs)

    def batch_dependent(self, score: str) -> str | None:
        if score == "cac" and self.options.rejection_softmin == "global":
            return "takes its softmin over all the samples scored together (cac.rejection_softmin=global)"
        return None

    # ------------------------------------------------------------------ re-centring (evaluation preparation)
    @property
    def prepares_evaluation(self) -> bool:
        return self.options.recenter

    def needs_train_outputs(self, head: nn.Module) -> bool:
        """With ``recenter``: while the head's anchors are still the loss's initial ``alpha * e_c``."""
        initial = self.loss_fn.anchors.cpu()
        return self.options.recenter and bool(torch.equal(head.anchors.float().cpu(), initial))

    @torch.no_grad()
    def prepare_evaluation(self, head: nn.Module, train_outputs: Tensor, train_labels: Tensor) -> None:
        """Replace the anchors by the mean logits of correctly classified training samples (CAC's evaluation)."""
        pred = self.predict(train_outputs, head)
        centers = head.anchors.clone()
        for c in range(head.num_classes):
            mask = (train_labels == c) & (pred == c)
            if mask.any():
                centers[c] = train_outputs[mask].float().mean(0).to(centers.device)
        head.anchors.copy_(centers)

    def evaluation_state(self, head: nn.Module) -> Any:
        return head.anchors.tolist()

    def load_evaluation_state(self, head: nn.Module, state: Any) -> None:
        head.anchors.copy_(torch.tensor(state))
