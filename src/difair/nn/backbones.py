"""Backbone registry: ``create_backbone("vgg32" | "resnet18" | "efficientnet_lite0" | "timm:NAME", in_channels=...)``.

Every backbone maps images ``[B, C, H, W]`` to a feature map ``[B, out_channels, h, w]`` and exposes
``out_channels``, so any head (DIFAIR, linear, CAC) sits on it. ``pretrained=True`` (resnet18, efficientnet_lite0,
timm) starts from ImageNet weights, ``weights=PATH`` from a local state dict (``difair.nn.pretrained``);
``pretrained_data_config(name)`` gives the input normalisation and evaluation crop those weights expect.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from difair.errors import DifairError
from difair.nn import pretrained as P
from difair.nn.efficientnet_lite import DATA_CONFIG as LITE0_DATA_CONFIG
from difair.nn.efficientnet_lite import EfficientNetLite0Features
from difair.nn.model import OSRModel
from difair.nn.resnet import ResNet18Features
from difair.nn.small_cnn import SmallCNN
from difair.nn.timm_features import TimmFeatures, timm_module
from difair.nn.vgg32 import VGG32


@dataclass(frozen=True)
class BackboneEntry:
    """A registered backbone: its constructor, the ``model.*`` options it takes, and what its weights expect."""

    build: Callable[..., nn.Module]
    reads: tuple[str, ...] = ()  # ModelConfig fields passed to ``build`` as keywords (difair.engine.build)
    data_config: Callable[[], dict[str, Any]] | None = None  # pretrained mean/std/crop; None: scratch only


_REGISTRY: dict[str, BackboneEntry] = {}
SCRATCH_OPTIONS = ("width", "dropout", "dropout_backend")  # what difair's own from-scratch networks take
VGG32_ONLY = ("dropout_kind", "padding", "bn_momentum", "bn_eps")  # the authors' VGG32 choices (fidelity)


def register_backbone(
    name: str, *, reads: tuple[str, ...] = (), data_config: Callable[[], dict[str, Any]] | None = None
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator that adds a backbone constructor to the registry: ``fn(in_channels, **options)`` receives the
    ``model.*`` options named in ``reads``; a backbone with pretrained weights gives their ``data_config`` and
    receives ``pretrained``, ``weights`` and ``load_weights`` when a run asks for them."""

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        old = _REGISTRY.get(name)
        if old is not None and _origin(old.build) != _origin(fn):  # the same function again: a module reload
            raise ValueError(
                f"backbone {name!r} is registered already ({_origin(old.build)}): choose another name"
            )
        _REGISTRY[name] = BackboneEntry(fn, tuple(reads), data_config)
        return fn

    return wrap


def _origin(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', '?')}"


def backbone_reads(name: str) -> tuple[str, ...]:
    """The ``model.*`` options backbone ``name`` takes (none for ``timm:NAME``)."""
    return () if name.startswith("timm:") or name not in _REGISTRY else _REGISTRY[name].reads


def has_pretrained_weights(name: str) -> bool:
    """Whether backbone ``name`` can start from trained weights (``model.pretrained``/``model.weights``)."""
    return name.startswith("timm:") or (name in _REGISTRY and _REGISTRY[name].data_config is not None)


def pretrained_backbones() -> str:
    """The backbones with pretrained weights, for messages: ``"efficientnet_lite0, resnet18 or timm:NAME"``."""
    names = sorted(n for n, e in _REGISTRY.items() if e.data_config is not None)
    return ", ".join(names) + " or timm:NAME"


@register_backbone("vgg32", reads=(*SCRATCH_OPTIONS, *VGG32_ONLY))
def _vgg32(in_channels: int = 3, **kwargs) -> nn.Module:
    return VGG32(in_channels=in_channels, **kwargs)


def _small_cnn(strides: tuple[int, ...]) -> Callable[..., nn.Module]:
    """A SmallCNN constructor with these strides, taking the registry's keyword options."""

    def build(in_channels: int = 1, **kwargs) -> nn.Module:
        return SmallCNN(
            in_channels,
            width=kwargs.get("width", 1.0),
            dropout=kwargs.get("dropout", 0.1),
            dropout_backend=kwargs.get("dropout_backend", "torch"),
            strides=strides,
        )

    return build


register_backbone("small_cnn", reads=SCRATCH_OPTIONS)(_small_cnn((1, 1, 2, 1, 2)))  # 16x16 -> 4x4 last map
register_backbone("small_cnn8", reads=SCRATCH_OPTIONS)(_small_cnn((1, 1, 2, 1, 1)))  # the demo's 8x8 -> 4x4


@register_backbone("resnet18", data_config=lambda: dict(P.TORCHVISION_DATA_CONFIG))
def _resnet18(in_channels: int = 3, **kwargs) -> nn.Module:
    return ResNet18Features(
        in_channels=in_channels,
        cifar_stem=kwargs.pop("cifar_stem", True),
        pretrained=kwargs.get("pretrained", False),
        weights=kwargs.get("weights"),
        load_weights=kwargs.get("load_weights", True),
    )


@register_backbone("efficientnet_lite0", data_config=lambda: dict(LITE0_DATA_CONFIG))
def _efficientnet_lite0(in_channels: int = 3, **kwargs) -> nn.Module:
    return EfficientNetLite0Features(
        in_channels=in_channels,
        pretrained=kwargs.get("pretrained", False),
        weights=kwargs.get("weights"),
        load_weights=kwargs.get("load_weights", True),
    )


def available_backbones() -> list[str]:
    """The registered backbone names, and ``timm:<name>`` for any timm model."""
    return sorted(_REGISTRY) + ["timm:<name>"]


def pretrained_data_config(name: str) -> dict:
    """Mean, std, ``crop_pct`` and interpolation that the backbone ``name``'s pretrained weights expect."""
    entry = _REGISTRY.get(name)
    if entry is not None and entry.data_config is not None:
        return entry.data_config()
    if name.startswith("timm:"):
        timm = timm_module()
        cfg = timm.get_pretrained_cfg(name.split(":", 1)[1])
        if cfg is None:
            raise DifairError(
                f"timm has no model {name.split(':', 1)[1]!r}: see timm.list_models() for the names"
            )
        d = cfg.to_dict()
        return {k: d.get(k, v) for k, v in P.TORCHVISION_DATA_CONFIG.items()}
    raise DifairError(f"backbone {name} has no pretrained weights: choose {pretrained_backbones()}")


def create_backbone(name: str, in_channels: int = 3, **kwargs) -> nn.Module:
    """Build a registered backbone by name; ``timm:NAME`` builds a timm model."""
    if name.startswith("timm:"):
        return TimmFeatures(
            name.split(":", 1)[1],
            in_channels=in_channels,
            pretrained=kwargs.get("pretrained", False),
            weights=kwargs.get("weights"),
            load_weights=kwargs.get("load_weights", True),
        )
    if name not in _REGISTRY:
        raise DifairError(f"unknown backbone {name!r}: choose one of {', '.join(available_backbones())}")
    return _REGISTRY[name].build(in_channels=in_channels, **kwargs)


__all__ = [
    "create_backbone",
    "register_backbone",
    "backbone_reads",
    "has_pretrained_weights",
    "pretrained_backbones",
    "available_backbones",
    "OSRModel",
    "EfficientNetLite0Features",
    "pretrained_data_config",
    "ResNet18Features",
    "SmallCNN",
]
