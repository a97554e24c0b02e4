"""Extracting what the post-hoc scores read from any model and data: one pass per set, the logits and the
feature layer's input (``extract``), the batches of loaders, datasets, tensors and ``(inputs, labels)`` pairs.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from difair.devices import pick_device
from difair.errors import DifairError
from difair.eval.posthoc import FeatureSet, odin_logits

__all__ = ["extract", "Data"]

Data = DataLoader | Dataset | Tensor | tuple[Tensor, Tensor] | Iterable


def _is_pair(data: Any) -> bool:
    """``(inputs, labels)``, also as a list: inputs a tensor, labels None or one per input row (never a batch of
    inputs, which has more than one dimension)."""
    if not isinstance(data, (tuple, list)) or len(data) != 2 or not isinstance(data[0], Tensor):
        return False
    y = data[1]
    labels_like = y is not None and (y.dim() if isinstance(y, Tensor) else np.ndim(y)) == 1
    if not isinstance(data, tuple) and not labels_like:
        return False  # a list of two input batches
    if y is not None and len(y) != len(data[0]):
        raise DifairError(
            f"(inputs, labels): {len(data[0])} inputs but {len(y)} labels: give one label per input"
        )
    return True


def _batches(data: Data, batch_size: int) -> Iterator[tuple[Tensor, Tensor | None]]:
    """(inputs, labels or None) batches from a loader, a dataset, a tensor of inputs or an (inputs, labels) pair."""
    if isinstance(data, Tensor):
        data = (data, None)
    if _is_pair(data):
        x, y = data
        for i in range(0, len(x), batch_size):
            yield x[i : i + batch_size], None if y is None else _labels(y)[i : i + batch_size]
        return
    if isinstance(data, Dataset) and not isinstance(data, DataLoader):
        data = DataLoader(data, batch_size=batch_size)
    for batch in data:
        if isinstance(batch, Tensor):
            yield batch, None
        elif isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], Tensor):
            yield batch[0], _labels(batch[1]) if len(batch) > 1 else None
        else:
            raise DifairError(
                f"a batch of the data is a {type(batch).__name__}: give batches of inputs or (inputs, labels), "
                "e.g. a DataLoader over (image, class index) pairs"
            )


def _labels(y: Any) -> Tensor:
    """A batch's labels as a tensor of class indices; anything else is refused in one line."""
    try:
        t = torch.as_tensor(y)
    except (TypeError, ValueError, RuntimeError):
        raise DifairError(
            f"labels must be class indices (integers), got {type(y).__name__}: map class names to indices first"
        ) from None
    if t.is_floating_point() or t.dtype == torch.bool:
        raise DifairError(
            f"labels must be class indices (integers), got {t.dtype}: map them to indices first"
        )
    return t


def _feature_layers(model: nn.Module, feature_layer: nn.Module | str | None) -> list[nn.Module]:
    """The candidates for the layer whose input is the pooled feature: the one named or given, else every
    ``nn.Linear`` (the one that runs last is taken)."""
    if isinstance(feature_layer, str):
        try:
            return [model.get_submodule(feature_layer)]
        except AttributeError:
            names = [n for n, _ in model.named_modules() if n][-5:]
            raise DifairError(
                f"the model has no module {feature_layer!r}: name one of model.named_modules(), e.g. "
                f"{', '.join(names)}"
            ) from None
    if feature_layer is not None:
        return [feature_layer]
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


class _FeatureTap:
    """Forward hooks on ``model``: in the first batch they find the feature layer (the one named, else the last
    ``nn.Linear`` to run) and check the output is no DIFAIR head's z; after it, they keep that layer's input only
    (one tensor a batch, however many layers the model has)."""

    def __init__(self, model: nn.Module, feature_layer: nn.Module | str | None) -> None:
        self.named = feature_layer is not None
        self.on = True  # off while ODIN runs its extra forward passes
        self.last: tuple[nn.Module, Tensor, Tensor] | None = None  # the latest call of a hooked layer
        self.layer: nn.Module | None = None
        self.gives_logits = False
        self.z: list[Tensor] = []
        self.hooks = [m.register_forward_hook(self._keep) for m in _feature_layers(model, feature_layer)]
        self.hooks += [
            m.register_forward_hook(lambda _m, _i, o: self.z.append(o.detach()) if self.on else None)
            for m in model.modules()
            if getattr(m, "features_per_class", 1) > 1
        ]

    def _keep(self, module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        if self.on:
            self.last = (module, inputs[0].detach(), output.detach())

    def first_batch(self, out: Tensor) -> None:
        """Settle the layer from the first batch's calls; only its hook stays."""
        if any(z.shape == out.shape and torch.equal(z, out) for z in self.z):
            raise DifairError(
                "the model's output is a DIFAIR head's z: N features per class, not one logit per class; build "
                "FeatureSets with difair.eval.posthoc.difair_feature_set(z, labels, anchors, N) and call "
                "evaluate(None, known, unknown, fit_on=...)"
            )
        self.z.clear()
        self.remove()
        if self.last is None:
            return
        self.layer, _, first = self.last
        same_shape = first.shape == out.shape
        # a named layer is taken at its word when its output has the logits' shape (e.g. logits / T follow it)
        self.gives_logits = same_shape and (self.named or torch.equal(first.float(), out.float()))
        self.hooks = [self.layer.register_forward_hook(self._keep)]

    def take(self) -> Tensor | None:
        """The feature layer's input in the batch just run (None when there is no layer)."""
        kept, self.last = self.last, None
        return kept[1] if kept is not None and kept[0] is self.layer else None

    def remove(self) -> None:
        for hook in self.hooks:
            hook.remove()
        self.hooks = []


def _layer_name(model: nn.Module, layer: nn.Module) -> str:
    return next((name for name, m in model.named_modules() if m is layer), type(layer).__name__)


def _on_device(layer: nn.Module, device: torch.device) -> Callable[[Tensor], Tensor]:
    def head(x: Tensor) -> Tensor:
        with torch.no_grad():
            return layer(x.to(device)).float().cpu()

    return head


def extract(
    model: nn.Module,
    data: Data,
    *,
    unknown: bool = False,
    feature_layer: nn.Module | str | None = None,
    device: torch.device | str | None = None,
    batch_size: int = 256,
    odin: Mapping[str, Any] | bool | None = None,
    name: str = "data",
) -> FeatureSet:
    """Stream ``data`` through ``model`` once (eval mode, no grad, fp32 on the CPU) into a FeatureSet.

    ``logits`` and ``features["z"]`` are the model's outputs; ``features["pooled"]`` is the input of
    ``feature_layer`` (default: the ``nn.Linear`` that runs last, the penultimate features of a torchvision
    classifier), which becomes the FeatureSet's ``head`` (and ``linear`` when it is an ``nn.Linear``) when its output
    is the model's output (else a warning, and no head). ``unknown=True`` labels every row -1; otherwise the data
    must carry labels. ``odin`` (True or ``odin_logits`` options) adds ``features["odin"]``. Every module's
    train/eval mode is as it was afterwards. ``name`` names the set in errors.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise DifairError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
    param = next(model.parameters(), torch.empty(0))
    device = param.device if device in (None, "auto") else pick_device(device)  # where the model is
    tap = _FeatureTap(model, feature_layer)
    logits, labels, odin_out, pooled = [], [], [], []
    modes = [(m, m.training) for m in model.modules()]  # each module's own: a frozen part stays in eval
    model.eval()
    try:
        for x, y in _batches(data, batch_size):
            if y is None and not unknown:
                raise DifairError("known and fit data need labels: give (inputs, labels) batches")
            if not x.is_floating_point():
                raise DifairError(
                    f"the inputs are {x.dtype}: give float tensors as the model takes them (uint8 images: "
                    "x.float() / 255, then the model's normalisation)"
                )
            x = x.to(device, dtype=param.dtype)  # float64 data, fp32 model
            with torch.no_grad():
                out = model(x)
            if not isinstance(out, Tensor) or out.dim() != 2:
                got = (
                    type(out).__name__
                    if not isinstance(out, Tensor)
                    else f"a tensor of shape {tuple(out.shape)}"
                )
                raise DifairError(
                    f"the model returned {got}: evaluate needs logits [batch, classes]; wrap the model so that it "
                    "returns them (e.g. a module whose forward returns model(x)[0] or model(x)['logits'])"
                )
            if not logits:
                tap.first_batch(out)
            if (inp := tap.take()) is not None:
                pooled.append(inp.flatten(1).float().cpu())
            logits.append(out.float().cpu())
            labels.append(torch.full((len(x),), -1) if unknown else y.long().cpu())
            if odin:
                tap.on = False
                odin_out.append(odin_logits(model, x, **({} if odin is True else dict(odin))).cpu())
                tap.on = True
    finally:
        tap.remove()
        for m, mode in modes:
            m.training = mode
    if not logits:
        raise DifairError(f"{name} is empty: no samples to extract features from")
    layer = tap.layer
    if layer is not None and not tap.gives_logits:
        which = "named" if feature_layer is not None else "the last to run"
        warnings.warn(
            f"the feature layer {_layer_name(model, layer)!r} ({which}) does not give the model's output: scores "
            "that apply the head to the features (react, ash, vim) are skipped; name the layer that gives the "
            "logits with feature_layer=",
            stacklevel=2,
        )
    out = torch.cat(logits)
    features = {"z": out}
    if pooled:
        features["pooled"] = torch.cat(pooled)
    if odin_out:
        features["odin"] = torch.cat(odin_out)
    head_ok = layer is not None and tap.gives_logits and bool(pooled)
    linear = None
    if head_ok and isinstance(layer, nn.Linear):
        linear = (
            layer.weight.detach().float().cpu(),
            None if layer.bias is None else layer.bias.detach().float().cpu(),
        )
    return FeatureSet(
        logits=out,
        labels=torch.cat(labels),
        features=features,
        head=_on_device(layer, device) if head_ok else None,
        linear=linear,
    )
