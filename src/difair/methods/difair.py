"""DIFAIR: anchored multi-dimensional class representation; nearest-anchor prediction (its options and method)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from difair.errors import DifairError, check_choice
from difair.eval import scores as S
from difair.eval.posthoc import FeatureSet, difair_feature_set
from difair.methods.base import Method, register_method
from difair.nn import functional as DF
from difair.nn.heads import DifairHead
from difair.nn.losses import DifairLoss


@dataclass
class DifairConfig:
    """Options of DIFAIR (the ``difair`` section of the run config)."""

    features_per_class: int = 5
    alpha: float = 10.0
    radius: float | None = None  # None: radius_ratio * sqrt(2*N*alpha^2)
    radius_ratio: float = DF.RADIUS_RATIO
    inner_weight: float = 0.1
    loss_mode: str = "smooth"  # smooth | hard
    corr_weight: float = 1.0  # lambda
    corr_variant: str = "paper"  # paper | reference
    head_kernel_size: int = 3

    def validate(self) -> None:
        """Raise one ``DifairError`` per problem, naming the fix."""
        if self.features_per_class < 1:
            raise DifairError(
                f"difair.features_per_class (N) must be >= 1, got {self.features_per_class}: set it to 1 or more"
            )
        if not self.alpha > 0:
            raise DifairError(f"difair.alpha must be > 0, got {self.alpha}: the paper uses 10")
        if not self.radius_ratio > 0:  # first: the radius's message computes the radius the ratio gives
            raise DifairError(
                f"difair.radius_ratio must be > 0, got {self.radius_ratio}: the paper uses {DF.RADIUS_RATIO}"
            )
        if self.radius is not None and not self.radius > 0:
            raise DifairError(
                f"difair.radius must be > 0, got {self.radius}: leave it unset for difair.radius_ratio * "
                f"sqrt(2*N*alpha^2) = {DF.default_radius(self.features_per_class, self.alpha, self.radius_ratio):.4g}"
            )
        check_choice("difair.loss_mode", self.loss_mode, DF.LOSS_MODES)
        check_choice("difair.corr_variant", self.corr_variant, DF.CORR_VARIANTS)
        if self.head_kernel_size < 1 or self.head_kernel_size % 2 == 0:
            raise DifairError(
                f"difair.head_kernel_size must be an odd number >= 1, got {self.head_kernel_size}: the paper uses 3"
            )
        if self.corr_weight < 0 or self.inner_weight < 0:
            raise DifairError("difair.corr_weight and difair.inner_weight must be >= 0")

    def resolve(self) -> None:
        """Fill the derived radius (``radius_ratio * sqrt(2*N*alpha^2)``, 6 decimals) when unset."""
        if self.radius is None:
            self.radius = round(DF.default_radius(self.features_per_class, self.alpha, self.radius_ratio), 6)


@register_method
class DifairMethod(Method):
    """DIFAIR: class ``c`` owns N output dims; its anchor is alpha on them; nearest-anchor prediction."""

    name = "difair"
    default_score = "min_distance"
    score_names = ("min_distance", "class_activation", "max_activation")
    per_class_kind = "distance"
    class_owned_features = True
    options: DifairConfig

    def __init__(self, options: DifairConfig, num_classes: int):
        super().__init__(options, num_classes)
        o = options
        radius = (
            DF.default_radius(o.features_per_class, o.alpha, o.radius_ratio) if o.radius is None else o.radius
        )
        self.loss_fn = DifairLoss(
            num_classes,
            o.features_per_class,
            o.alpha,
            radius,
            o.inner_weight,
            o.loss_mode,
            o.corr_weight,
            o.corr_variant,
        )

    @property
    def outputs_per_class(self) -> int:
        return self.options.features_per_class

    def build_head(self, in_channels: int) -> nn.Module:
        o = self.options
        return DifairHead(in_channels, self.num_classes, o.features_per_class, o.head_kernel_size)

    def anchors(self, head: nn.Module) -> Tensor:
        """The loss's anchors (built once), on the head's device."""
        return self.loss_fn.anchors.to(head.weight.device)

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
            "class_activation": S.difair_class_activation(outputs, self.options.features_per_class),
            "max_activation": S.max_activation(outputs),
        }

    def per_class(self, outputs: Tensor, head: nn.Module) -> Tensor:
        return DF.anchor_distances(outputs, self.anchors(head).to(outputs.device))

    odin_applies = False  # no logits to perturb against (its stand-in, minus the distances, is not a softmax)

    def feature_set(self, head: nn.Module, maps: Tensor, outputs: Tensor, labels: Tensor) -> FeatureSet:
        """Minus the anchor distances as logits, z, the class sums, the pooled maps, and the maps with the head
        (so that ReAct and ASH can shape the head's input)."""
        return difair_feature_set(
            outputs,
            labels,
            self.anchors(head).to(outputs.device),
            self.options.features_per_class,
            maps.float().mean(dim=(2, 3)),
            maps=maps,
            head=head,
        )
