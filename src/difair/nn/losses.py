"""Loss modules over the functional core."""

from __future__ import annotations

from torch import Tensor, nn

from difair.nn import functional as DF


class DifairLoss(nn.Module):
    """DIFAIR objective: distance loss + ``corr_weight`` x within-class filter-correlation penalty of the head.

    Defaults are the paper's: N=5, alpha=10, r=0.6*sqrt(2*N*alpha^2), inner weight 0.1, lambda=1.
    ``forward(z, target, head_weight)`` returns the scalar total; ``terms`` returns each part.
    """

    def __init__(
        self,
        num_classes: int,
        features_per_class: int = 5,
        alpha: float = 10.0,
        radius: float | None = None,
        inner_weight: float = 0.1,
        mode: str = "smooth",
        corr_weight: float = 1.0,
        corr_variant: str = "paper",
    ):
        super().__init__()
        if features_per_class < 1:
            raise ValueError(f"features_per_class must be >= 1, got {features_per_class}")
        if mode not in DF.LOSS_MODES:
            raise ValueError(f"mode must be one of {DF.LOSS_MODES}, got {mode!r}")
        if corr_variant not in DF.CORR_VARIANTS:
            raise ValueError(f"corr_variant must be one of {DF.CORR_VARIANTS}, got {corr_variant!r}")
        if inner_weight < 0 or corr_weight < 0:
            raise ValueError(
                f"inner_weight and corr_weight must be >= 0, got {inner_weight} and {corr_weight}"
            )
        self.features_per_class = features_per_class
        self.radius = DF.default_radius(features_per_class, alpha) if radius is None else float(radius)
        if not self.radius > 0:
            raise ValueError(f"radius must be > 0, got {self.radius}")
        self.inner_weight = inner_weight
        self.mode = mode
        self.corr_weight = corr_weight
        self.corr_variant = corr_variant
        self.register_buffer("anchors", DF.class_anchors(num_classes, features_per_class, alpha))

    def terms(self, z: Tensor, target: Tensor, head_weight: Tensor | None = None) -> dict[str, Tensor]:
        dist = DF.difair_loss(DF.widen(z), target, self.anchors, self.radius, self.inner_weight, self.mode)
        out = {"distance": dist}
        total = dist
        if head_weight is not None and head_weight.shape[0] != self.anchors.shape[1]:
            raise ValueError(
                f"the head has {head_weight.shape[0]} filters, the loss's anchors {self.anchors.shape[1]} dims "
                f"({len(self.anchors)} classes x {self.features_per_class}): build both for the same classes and N"
            )
        if head_weight is not None and self.corr_weight:
            corr = DF.filter_correlation_penalty(head_weight, self.features_per_class, self.corr_variant)
            out["correlation"] = corr
            total = total + self.corr_weight * corr
        out["loss"] = total
        return out

    def forward(self, z: Tensor, target: Tensor, head_weight: Tensor | None = None) -> Tensor:
        return self.terms(z, target, head_weight)["loss"]


class CACLoss(nn.Module):
    """Class Anchor Clustering loss on logits with anchors ``alpha * e_c``."""

    def __init__(
        self,
        num_classes: int,
        alpha: float = 10.0,
        lambda_: float = 0.1,
        tuplet_includes_target: bool = False,
    ):
        super().__init__()
        self.lambda_ = lambda_
        self.tuplet_includes_target = tuplet_includes_target
        self.register_buffer("anchors", DF.class_anchors(num_classes, 1, alpha))

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return DF.cac_loss(
            DF.widen(logits),
            target,
            self.anchors,
            self.lambda_,
            tuplet_includes_target=self.tuplet_includes_target,
        )


__all__ = ["DifairLoss", "CACLoss"]
