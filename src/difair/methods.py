"""One small object per method (difair, ce, cac): its head, its loss, its predictions and its scores.

The engine and the evaluation treat every method alike through this interface. Scores follow the package
convention: higher = more likely known.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from difair.eval import scores as S
from difair.nn import functional as DF
from difair.nn.heads import CACHead, DifairHead, LinearHead
from difair.nn.losses import CACLoss, DifairLoss


@dataclass
class Method:
    """Base: subclasses define ``build_head``, ``loss_terms``, ``predict`` and ``scores``."""

    name: str = ""
    default_score: str = ""
    score_names: tuple[str, ...] = field(default_factory=tuple)

    def build_head(self, in_channels: int, num_classes: int) -> nn.Module:
        raise NotImplementedError

    def loss_terms(
        self, outputs: Tensor, target: Tensor, head: nn.Module, scale: float = 1.0
    ) -> dict[str, Tensor]:
        """Loss terms with the total under ``"loss"``; ``scale`` multiplies the data term (not the penalty)."""
        raise NotImplementedError

    def predict(self, outputs: Tensor, head: nn.Module) -> Tensor:
        raise NotImplementedError

    def scores(self, outputs: Tensor, head: nn.Module) -> dict[str, Tensor]:
        raise NotImplementedError


@dataclass
class DifairMethod(Method):
    """DIFAIR: anchored multi-dimensional class representation; nearest-anchor prediction."""

    features_per_class: int = 5
    alpha: float = 10.0
    radius: float | None = None
    inner_weight: float = 0.1
    loss_mode: str = "smooth"
    corr_weight: float = 1.0
    corr_variant: str = "paper"
    head_kernel_size: int = 3
    name: str = "difair"
    default_score: str = "min_distance"
    score_names: tuple[str, ...] = ("min_distance", "class_activation", "max_activation")

    def build_head(self, in_channels: int, num_classes: int) -> nn.Module:
        self.loss_fn = DifairLoss(
            num_classes,
            self.features_per_class,
            self.alpha,
            self.radius,
            self.inner_weight,
            self.loss_mode,
            self.corr_weight,
            self.corr_variant,
        )
        return DifairHead(in_channels, num_classes, self.features_per_class, self.head_kernel_size)

    def anchors(self, head: DifairHead) -> Tensor:
        return DF.class_anchors(
            head.num_classes, self.features_per_class, self.alpha, device=head.weight.device
        )

    def loss_terms(
        self, outputs: Tensor, target: Tensor, head: nn.Module, scale: float = 1.0
    ) -> dict[str, Tensor]:
        self.loss_fn.to(outputs.device)
        terms = self.loss_fn.terms(outputs, target, head.weight)
        if scale != 1.0:
            terms["loss"] = terms["loss"] + (scale - 1.0) * terms["distance"]
        return terms

    def predict(self, outputs: Tensor, head: nn.Module) -> Tensor:
        return S.nearest_anchor(outputs, self.anchors(head))

    def scores(self, outputs: Tensor, head: nn.Module) -> dict[str, Tensor]:
        return {
            "min_distance": S.difair_min_distance(outputs, self.anchors(head)),
            "class_activation": S.difair_class_activation(outputs, self.features_per_class),
            "max_activation": S.max_activation(outputs),
        }


@dataclass
class CEMethod(Method):
    """Cross-entropy baseline; argmax prediction; MSP and MLS scores."""

    label_smoothing: float = 0.0
    name: str = "ce"
    default_score: str = "mls"
    score_names: tuple[str, ...] = ("msp", "mls")

    def build_head(self, in_channels: int, num_classes: int) -> nn.Module:
        return LinearHead(in_channels, num_classes)

    def loss_terms(
        self, outputs: Tensor, target: Tensor, head: nn.Module, scale: float = 1.0
    ) -> dict[str, Tensor]:
        loss = nn.functional.cross_entropy(outputs.float(), target, label_smoothing=self.label_smoothing)
        return {"loss": loss * scale}

    def predict(self, outputs: Tensor, head: nn.Module) -> Tensor:
        return outputs.argmax(dim=1)

    def scores(self, outputs: Tensor, head: nn.Module) -> dict[str, Tensor]:
        return {"msp": S.msp(outputs), "mls": S.mls(outputs)}


@dataclass
class CACMethod(Method):
    """Class Anchor Clustering (Miller et al. 2021) on a linear logit head."""

    alpha: float = 10.0
    lambda_: float = 0.1
    tuplet_includes_target: bool = False
    rejection_softmin: str = "sample"
    name: str = "cac"
    default_score: str = "cac"
    score_names: tuple[str, ...] = ("cac", "min_distance")

    def build_head(self, in_channels: int, num_classes: int) -> nn.Module:
        self.loss_fn = CACLoss(num_classes, self.alpha, self.lambda_, self.tuplet_includes_target)
        return CACHead(in_channels, num_classes, self.alpha)

    def loss_terms(
        self, outputs: Tensor, target: Tensor, head: nn.Module, scale: float = 1.0
    ) -> dict[str, Tensor]:
        self.loss_fn.to(outputs.device)
        return {"loss": self.loss_fn(outputs, target) * scale}

    def predict(self, outputs: Tensor, head: nn.Module) -> Tensor:
        d = head.distances(outputs)
        return DF.cac_rejection_score(d, normalize=self.rejection_softmin).argmin(dim=1)

    def scores(self, outputs: Tensor, head: nn.Module) -> dict[str, Tensor]:
        anchors = head.anchors.float()
        return {
            "cac": S.cac_score(outputs, anchors, self.rejection_softmin),
            "min_distance": S.difair_min_distance(outputs, anchors),
        }

    @torch.no_grad()
    def recenter(self, head: CACHead, train_outputs: Tensor, train_labels: Tensor) -> None:
        """Replace the anchors by the mean logits of correctly classified training samples (CAC's evaluation)."""
        pred = self.predict(train_outputs, head)
        centers = head.anchors.clone()
        for c in range(head.num_classes):
            mask = (train_labels == c) & (pred == c)
            if mask.any():
                centers[c] = train_outputs[mask].float().mean(0).to(centers.device)
        head.anchors.copy_(centers)


METHODS = {"difair": DifairMethod, "ce": CEMethod, "cac": CACMethod}
