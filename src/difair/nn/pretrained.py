"""Pretrained weights for backbones: the libraries' caches (``model.pretrained``), local state dicts
(``model.weights``), and each backbone's pretrained data config (normalisation, eval crop).

A local state dict is loaded non-strictly and checked by name: keys of the backbone missing from the file, or
keys of the file the backbone lacks, are a ``DifairError`` naming them, except the classifier's (an ImageNet
``fc``/``classifier``/``head``), which the feature extractor drops on purpose: those are reported in one warning.
"""

from __future__ import annotations

import os
import socket
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import Tensor, nn

from difair.errors import DifairError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# torchvision's ImageNet evaluation: resize to 256, centre crop 224
TORCHVISION_DATA_CONFIG: dict[str, Any] = {
    "mean": IMAGENET_MEAN,
    "std": IMAGENET_STD,
    "crop_pct": 0.875,
    "interpolation": "bilinear",
}
WEIGHTS_HINT = "--set model.weights=PATH (a local state dict)"


def torch_hub_dir() -> Path:
    """Where torchvision keeps downloaded weights (``$TORCH_HOME/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def hf_hub_dir() -> Path:
    """Where timm keeps weights it takes from the Hugging Face hub (``$HF_HUB_CACHE``)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME", str(Path.home() / ".cache" / "huggingface"))
    return Path(home) / "hub"


def unavailable(what: str, cache: Path, exc: BaseException) -> DifairError:
    """The one-line error for pretrained weights that could not be fetched (offline, missing)."""
    cause = " ".join(str(exc).split()) or type(exc).__name__
    if len(cause) > 160:  # at a word boundary, marked as cut
        cause = cause[:160].rsplit(" ", 1)[0] + " ..."
    return DifairError(
        f"cannot get the pretrained weights of {what} ({cause}): put them in the cache {cache} "
        f"(on a machine online, run once with model.pretrained=true) or pass {WEIGHTS_HINT}"
    )


def fetch(what: str, cache: Path, get: Callable[[], Any]) -> Any:
    """``get()``, with any failure to download or read the weights turned into ``unavailable``."""
    try:
        return get()
    except DifairError:
        raise
    except Exception as exc:  # urllib, requests and huggingface_hub raise their own classes
        raise unavailable(what, cache, exc) from exc


# what timm asks the hub for, in the order it asks, when a config names no file
HF_WEIGHT_FILES = (
    "model.safetensors",
    "pytorch_model.bin",
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.bin",
)
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


def hub_unreachable(repo_id: str, filename: str | None = None) -> str | None:
    """Why the Hugging Face repo ``repo_id``'s weights cannot be had now: none is cached and the hub's host does
    not resolve (no network). None when a file is cached, a proxy is set (it resolves names itself), the hub is in
    offline mode (it fails at once) or the host resolves. huggingface_hub retries a host that does not resolve for
    about 50 s before it fails the same way."""
    from huggingface_hub import constants, try_to_load_from_cache  # optional: comes with timm

    for name in (filename,) if filename else HF_WEIGHT_FILES:
        if isinstance(try_to_load_from_cache(repo_id, name), str):
            return None
    if constants.HF_HUB_OFFLINE or any(os.environ.get(v) for v in PROXY_VARIABLES):
        return None
    host = urlparse(constants.ENDPOINT).hostname or constants.ENDPOINT
    try:
        socket.getaddrinfo(host, 443)
    except OSError as exc:
        return f"{repo_id} is not in the cache and {host} cannot be reached: {exc.strerror or exc}"
    return None


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """The tensors of a local state dict file (``weights_only``: no code runs); a ``{"state_dict": ...}`` or
    ``{"model": ...}`` checkpoint is unwrapped, a DDP ``module.`` prefix dropped."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DifairError(f"model.weights file {p} not found: give the path of a saved state dict")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DifairError(
            f"model.weights file {p} is not a PyTorch state dict ({type(exc).__name__}): save one with "
            "torch.save(model.state_dict(), PATH)"
        ) from exc
    for key in ("state_dict", "model"):
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise DifairError(f"model.weights file {p} holds no mapping of names to tensors")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return dict(state)


def run_backbone_state(state: Mapping[str, Tensor]) -> dict[str, Tensor] | None:
    """The backbone's tensors (``backbone.`` prefix dropped) when ``state`` is the model of a difair run (its
    backbone, head and normalisation buffers), else None: a run's checkpoint can start another run's backbone."""
    if not {"mean", "std"} <= set(state) or not any(k.startswith("backbone.") for k in state):
        return None
    return {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}


def _names(keys: list[str]) -> str:
    return ", ".join(keys[:6]) + (f" and {len(keys) - 6} more" if len(keys) > 6 else "")


def load_checked(
    module: nn.Module, state: Mapping[str, Tensor], source: str, classifier: tuple[str, ...] = ()
) -> None:
    """Load ``state`` into ``module``, every key accounted for: a missing or unexpected key is a
    ``DifairError`` naming it, except keys under a ``classifier`` prefix (warned); a shape mismatch names the
    tensor and both shapes."""
    own = module.state_dict()
    for key, value in state.items():
        if key in own and own[key].shape != value.shape:
            raise DifairError(
                f"{source}: tensor {key} has shape {tuple(value.shape)}, the backbone's {tuple(own[key].shape)}: "
                "the weights belong to another architecture (or in_channels/number of classes)"
            )

    def is_classifier(key: str) -> bool:
        return any(key == c or key.startswith(c + ".") for c in classifier)

    missing = sorted(k for k in own if k not in state)
    unexpected = sorted(k for k in state if k not in own)
    bad_missing = [k for k in missing if not is_classifier(k)]
    bad_unexpected = [k for k in unexpected if not is_classifier(k)]
    if bad_missing:
        raise DifairError(
            f"{source} lacks {len(bad_missing)} tensors of the backbone: {_names(bad_missing)}: "
            "the weights belong to another architecture"
        )
    if bad_unexpected:
        raise DifairError(
            f"{source} holds {len(bad_unexpected)} tensors the backbone lacks: {_names(bad_unexpected)}: "
            "the weights belong to another architecture"
        )
    module.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    skipped = missing + unexpected
    if skipped:
        warnings.warn(
            f"{source}: classifier tensors not used by the feature extractor: {_names(skipped)}", stacklevel=3
        )


__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "TORCHVISION_DATA_CONFIG",
    "fetch",
    "hf_hub_dir",
    "hub_unreachable",
    "load_checked",
    "read_state_dict",
    "torch_hub_dir",
    "unavailable",
]
