"""Build the method object and the model (normalisation + backbone + head) from a config."""

from __future__ import annotations

from difair.config import TrainConfig
from difair.methods import CACMethod, CEMethod, DifairMethod, Method
from difair.nn.backbones import OSRModel, create_backbone


def build_method(cfg: TrainConfig) -> Method:
    """The method object of ``cfg.method`` with its options from the config."""
    if cfg.method == "difair":
        d = cfg.difair
        return DifairMethod(
            features_per_class=d.features_per_class,
            alpha=d.alpha,
            radius=d.radius,
            inner_weight=d.inner_weight,
            loss_mode=d.loss_mode,
            corr_weight=d.corr_weight,
            corr_variant=d.corr_variant,
            head_kernel_size=d.head_kernel_size,
        )
    if cfg.method == "ce":
        return CEMethod(label_smoothing=cfg.ce.label_smoothing)
    c = cfg.cac
    return CACMethod(
        alpha=c.alpha,
        lambda_=c.lambda_,
        tuplet_includes_target=c.tuplet_includes_target,
        rejection_softmin=c.rejection_softmin,
    )


def build_model(
    cfg: TrainConfig, num_classes: int, channels: int, mean: list[float], std: list[float]
) -> tuple[OSRModel, Method]:
    """A freshly initialised model for ``cfg`` and its method object (seeded by the caller)."""
    method = build_method(cfg)
    m = cfg.model
    kwargs: dict = {}
    if m.backbone in ("small_cnn", "small_cnn8"):
        kwargs = dict(width=m.width, dropout=m.dropout, dropout_backend=m.dropout_backend)
    elif m.backbone == "vgg32":
        kwargs = dict(
            dropout=m.dropout,
            dropout_kind=m.dropout_kind,
            dropout_backend=m.dropout_backend,
            padding=m.padding,
            bn_momentum=m.bn_momentum,
            bn_eps=m.bn_eps,
            width=m.width,
        )
    backbone = create_backbone(m.backbone, in_channels=channels, **kwargs)
    head = method.build_head(backbone.out_channels, num_classes)
    return OSRModel(backbone, head, mean, std), method
