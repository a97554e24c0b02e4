"""Backbone registry: ``create_backbone("vgg32" | "resnet18" | "efficientnet_lite0" | "timm:NAME", in_channels=...)``.

Every backbone maps images ``[B, C, H, W]`` to a feature map ``[B, out_channels, h, w]`` and exposes
``out_channels``, so any head (DIFAIR, linear, CAC) sits on it. ``pretrained=True`` (resnet18, efficientnet_lite0,
timm) starts from ImageNet weights, ``weights=PATH`` from a local state dict (``difair.nn.pretrained``);
``pretrained_data_config(name)`` gives the input normalisation and evaluation crop those weights expect.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import torch
from torch import Tensor, nn

from difair.errors import DifairError
from difair.nn import pretrained as P
from difair.nn.dropout import make_dropout
from difair.nn.efficientnet_lite import DATA_CONFIG as LITE0_DATA_CONFIG
from difair.nn.efficientnet_lite import EfficientNetLite0Features
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
        _REGISTRY[name] = BackboneEntry(fn, tuple(reads), data_config)
        return fn

    return wrap


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


class SmallCNN(nn.Module):
    """A five-conv network for tiny images (the digits demo): 3x3 convs with BatchNorm and LeakyReLU(0.2),
    widths ``w, w, 2w, 2w, 2w`` (``w = 32 * width``), stride 2 at the third and fifth conv (``strides``; ``small_cnn8`` keeps only the third's), dropout before the fourth.

    On 16x16 input its last map is 4x4, as VGG32's is on 32x32, at about a twentieth of VGG32's cost.
    """

    def __init__(
        self,
        in_channels: int = 1,
        width: float = 1.0,
        dropout: float = 0.1,
        dropout_backend: str = "torch",
        strides: tuple[int, ...] = (1, 1, 2, 1, 2),
    ):
        super().__init__()
        w = max(1, round(32 * width))
        layers: list[nn.Module] = []
        channels = [(in_channels, w), (w, w), (w, 2 * w), (2 * w, 2 * w), (2 * w, 2 * w)]
        for i, ((cin, cout), stride) in enumerate(zip(channels, strides, strict=True)):
            if i == 3:
                layers.append(make_dropout(dropout, "element", dropout_backend))
            layers += [
                nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
                nn.BatchNorm2d(cout),
                nn.LeakyReLU(0.2),
            ]
        self.body = nn.Sequential(*layers)
        self.out_channels = 2 * w

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


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


class ResNet18Features(nn.Module):
    """torchvision ResNet-18 without its pooling and fc; ``cifar_stem`` uses a 3x3 stride-1 stem for 32x32 images.

    ``pretrained``: torchvision's ImageNet weights (``IMAGENET1K_V1``, from its cache); ``weights``: a local state
    dict in torchvision's names. Both keep the ImageNet stem (``cifar_stem`` is ignored).
    """

    def __init__(
        self,
        in_channels: int = 3,
        cifar_stem: bool = True,
        pretrained: bool = False,
        weights: str | None = None,
        load_weights: bool = True,
        **_: object,
    ):
        super().__init__()
        from torchvision.models import ResNet18_Weights, resnet18  # start-up time: torchvision.models is slow

        net = resnet18(weights=None)
        if pretrained or weights:
            cifar_stem = False
            if in_channels != 3:
                raise DifairError("pretrained resnet18 weights take 3-channel images: use an RGB dataset")
        if (pretrained or weights) and load_weights:
            state = (
                P.read_state_dict(weights)
                if weights
                else P.fetch(
                    "resnet18",
                    P.torch_hub_dir(),
                    lambda: ResNet18_Weights.IMAGENET1K_V1.get_state_dict(progress=False),
                )
            )
            P.load_checked(net, state, f"weights {weights or 'resnet18 IMAGENET1K_V1'}", classifier=("fc",))
        if cifar_stem:
            net.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
            net.maxpool = nn.Identity()
        elif in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.body = nn.Sequential(
            net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4
        )
        self.out_channels = 512

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


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


class TimmFeatures(nn.Module):
    """Any timm model as a feature extractor (its last feature map).

    ``pretrained``: timm's default weights for ``name`` (from the Hugging Face cache); ``weights``: a local state
    dict in timm's names (its classifier's tensors are skipped with a warning).
    """

    def __init__(
        self,
        name: str,
        in_channels: int = 3,
        pretrained: bool = False,
        weights: str | None = None,
        load_weights: bool = True,
    ):
        super().__init__()
        timm = _timm()
        if not load_weights:  # the same architecture; its tensors come from a checkpoint
            pretrained, weights = False, None
        if not timm.is_model(name.split(".", 1)[0]):
            raise DifairError(f"timm has no model {name!r}: see timm.list_models() for the names")
        make = lambda: timm.create_model(  # noqa: E731
            name, pretrained=pretrained and not weights, in_chans=in_channels, num_classes=0, global_pool=""
        )
        if pretrained and not weights:
            self.net = P.fetch(f"timm:{name}", P.hf_hub_dir(), lambda: _offline_check(timm, name) or make())
        else:
            self.net = make()
        if weights:
            classifier = self.net.pretrained_cfg.get("classifier", "classifier")
            P.load_checked(
                self.net, P.read_state_dict(weights), f"weights {weights}", classifier=(classifier,)
            )
        self.out_channels = int(self.net.num_features)

    def forward(self, x: Tensor) -> Tensor:
        out = self.net.forward_features(x)
        if out.dim() == 3:  # token sequence [B, T, C] of a transformer: treat as a 1 x T map
            out = out.transpose(1, 2).unsqueeze(2)
        return out


def _offline_check(timm: ModuleType, name: str) -> None:
    """Raise at once when timm would wait on the network for weights it cannot get (``P.hub_unreachable``)."""
    try:
        cfg = timm.get_pretrained_cfg(name)
    except RuntimeError:  # an unknown weight tag: timm.create_model says so
        return None
    why = P.hub_unreachable(cfg.hf_hub_id, cfg.hf_hub_filename) if cfg is not None and cfg.hf_hub_id else None
    if why:
        raise ConnectionError(why)
    return None


def _timm():
    try:
        import timm  # optional dependency
    except ImportError as exc:
        raise DifairError("backbone 'timm:...' needs timm: pip install 'difair[timm]'") from exc
    return timm


def available_backbones() -> list[str]:
    """The registered backbone names, and ``timm:<name>`` for any timm model."""
    return sorted(_REGISTRY) + ["timm:<name>"]


def pretrained_data_config(name: str) -> dict:
    """Mean, std, ``crop_pct`` and interpolation that the backbone ``name``'s pretrained weights expect."""
    entry = _REGISTRY.get(name)
    if entry is not None and entry.data_config is not None:
        return entry.data_config()
    if name.startswith("timm:"):
        timm = _timm()
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


class OSRModel(nn.Module):
    """Normalisation, backbone and head in one module; input images are floats in [0, 1] (or uint8 0-255)."""

    def __init__(
        self,
        backbone: nn.Module,
        head: nn.Module,
        mean: list[float],
        std: list[float],
        freeze_backbone: bool = False,
    ):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.freeze_backbone = freeze_backbone
        if freeze_backbone:
            backbone.requires_grad_(False)
            backbone.eval()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def normalize(self, x: Tensor) -> Tensor:
        if x.dtype == torch.uint8:
            x = x.float().div_(255)
        return (x - self.mean) / self.std

    def train(self, mode: bool = True) -> OSRModel:
        """As ``nn.Module.train``; a frozen backbone stays in eval mode (BatchNorm statistics, dropout off)."""
        super().train(mode)
        if self.freeze_backbone:
            self.backbone.eval()
        return self

    def feature_map(self, x: Tensor) -> Tensor:
        return self.backbone(self.normalize(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.feature_map(x))


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
