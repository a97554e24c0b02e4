"""One evaluation API for any model and data: extract features once, fit each score on ``fit_on``, tabulate metrics.

``evaluate(model, known, unknown, fit_on=train, scores=[...])`` works on any classifier that returns logits (a
plain torchvision model included) with DataLoaders, datasets or tensors, and on precomputed FeatureSets.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from difair.devices import pick_device
from difair.errors import DifairError
from difair.eval.metrics import osr_metrics
from difair.eval.overlap import shares_samples
from difair.eval.posthoc import Detector, FeatureSet, build_detector, odin_logits, resolve_scores

__all__ = ["evaluate", "extract", "ScoreTable", "DEFAULT_SCORES"]

#: Scores of ``evaluate`` when none are named: the output scores and the two feature scores most often reported.
DEFAULT_SCORES = ("msp", "mls", "energy", "knn", "mahalanobis")

Data = DataLoader | Dataset | Tensor | tuple[Tensor, Tensor] | Iterable


def _is_pair(data: Any) -> bool:
    """``(inputs, labels)``, also as a list: inputs a tensor, labels None or one per input row (never a batch of
    inputs, which has more than one dimension)."""
    if not isinstance(data, (tuple, list)) or len(data) != 2 or not isinstance(data[0], Tensor):
        return False
    y = data[1]
    if isinstance(data, tuple):
        if y is not None and len(y) != len(data[0]):
            raise DifairError(
                f"(inputs, labels): {len(data[0])} inputs but {len(y)} labels: give one label per input"
            )
        return True
    return (
        y is not None and (y.dim() if isinstance(y, Tensor) else np.ndim(y)) == 1 and len(y) == len(data[0])
    )


def _batches(data: Data, batch_size: int) -> Iterator[tuple[Tensor, Tensor | None]]:
    """(inputs, labels or None) batches from a loader, a dataset, a tensor of inputs or an (inputs, labels) pair."""
    if isinstance(data, Tensor):
        data = (data, None)
    if _is_pair(data):
        x, y = data
        for i in range(0, len(x), batch_size):
            yield x[i : i + batch_size], None if y is None else torch.as_tensor(y)[i : i + batch_size]
        return
    if isinstance(data, Dataset) and not isinstance(data, DataLoader):
        data = DataLoader(data, batch_size=batch_size)
    for batch in data:
        if isinstance(batch, Tensor):
            yield batch, None
        else:
            yield batch[0], torch.as_tensor(batch[1]) if len(batch) > 1 else None


def _feature_layers(model: nn.Module, feature_layer: nn.Module | str | None) -> list[nn.Module]:
    """The candidates for the layer whose input is the pooled feature: the one named or given, else every
    ``nn.Linear`` (the one that runs last is taken)."""
    if isinstance(feature_layer, str):
        return [model.get_submodule(feature_layer)]
    if feature_layer is not None:
        return [feature_layer]
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


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
) -> FeatureSet:
    """Stream ``data`` through ``model`` once (eval mode, no grad, fp32 on the CPU) into a FeatureSet.

    ``logits`` and ``features["z"]`` are the model's outputs; ``features["pooled"]`` is the input of
    ``feature_layer`` (default: the ``nn.Linear`` that runs last, the penultimate features of a torchvision
    classifier), which becomes the FeatureSet's ``head`` (and ``linear`` when it is an ``nn.Linear``) when its output
    is the model's output (else a warning, and no head). ``unknown=True`` labels every row -1; otherwise the data
    must carry labels. ``odin`` (True or ``odin_logits`` options) adds ``features["odin"]``. Every module's
    train/eval mode is as it was afterwards.
    """
    param = next(model.parameters(), torch.empty(0))
    device = pick_device(device) if device is not None else param.device
    candidates = _feature_layers(model, feature_layer)
    calls: list[tuple[nn.Module, Tensor, Tensor]] = []  # this batch's calls of the candidates, in order
    capture = [True]  # off while ODIN runs its extra forward passes

    def keep_input(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        if capture[0]:
            calls.append((module, inputs[0].detach(), output.detach()))

    hooks = [m.register_forward_hook(keep_input) for m in candidates]
    z_heads: list[Tensor] = []  # outputs of DIFAIR heads (N features per class) in the first batch
    hooks += [
        m.register_forward_hook(lambda _m, _i, o: z_heads.append(o) if not logits else None)
        for m in model.modules()
        if getattr(m, "features_per_class", 1) > 1
    ]
    layer: nn.Module | None = None
    gives_logits = False
    pooled: list[Tensor] = []
    logits, labels, odin_out = [], [], []
    modes = [(m, m.training) for m in model.modules()]  # each module's own: a frozen part stays in eval
    model.eval()
    try:
        for x, y in _batches(data, batch_size):
            if y is None and not unknown:
                raise DifairError("known and fit data need labels: give (inputs, labels) batches")
            x = x.to(device, dtype=param.dtype if x.is_floating_point() else None)  # float64 data, fp32 model
            calls.clear()
            with torch.no_grad():
                out = model(x)
            if not logits and any(o.shape == out.shape and torch.equal(o, out) for o in z_heads):
                raise DifairError(
                    "the model's output is a DIFAIR head's z: N features per class, not one logit per class; build "
                    "FeatureSets with difair.eval.posthoc.difair_feature_set(z, labels, anchors, N) and call "
                    "evaluate(None, known, unknown, fit_on=...)"
                )
            if layer is None and calls:  # the layer that ran last; its output should be the logits
                layer, _, first = calls[-1]
                gives_logits = first.shape == out.shape and torch.equal(first.float(), out.float())
            mine = [inp for m, inp, _ in calls if m is layer]
            if mine:
                pooled.append(mine[-1].flatten(1).float().cpu())
            logits.append(out.float().cpu())
            labels.append(torch.full((len(x),), -1) if unknown else y.long().cpu())
            if odin:
                capture[0] = False
                odin_out.append(odin_logits(model, x, **({} if odin is True else dict(odin))).cpu())
                capture[0] = True
    finally:
        for hook in hooks:
            hook.remove()
        for m, mode in modes:
            m.training = mode
    if not logits:
        raise DifairError("no samples to extract features from (empty data)")
    if layer is not None and not gives_logits:
        warnings.warn(
            f"the feature layer {_layer_name(model, layer)!r} (the last to run) does not give the model's output: "
            "scores that apply the head to the features (react, ash, vim) are skipped; name the layer that gives "
            "the logits with feature_layer=",
            stacklevel=2,
        )
    out = torch.cat(logits)
    features = {"z": out}
    if pooled:
        features["pooled"] = torch.cat(pooled)
    if odin_out:
        features["odin"] = torch.cat(odin_out)
    head_ok = layer is not None and gives_logits and bool(pooled)
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


@dataclass
class ScoreTable:
    """The metrics of every score (one row each, in request order), the scores skipped and why, and timings."""

    rows: list[dict[str, Any]]
    skipped: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, score: str) -> dict[str, Any]:
        for row in self.rows:
            if row["score"] == score:
                return row
        raise KeyError(
            f"no row for score {score!r}" + (f" ({self.skipped[score]})" if score in self.skipped else "")
        )

    def best(self, metric: str = "auroc") -> str:
        """The score with the highest ``metric`` (lowest for ``fpr95``)."""
        sign = -1.0 if metric == "fpr95" else 1.0
        return max(self.rows, key=lambda r: sign * r[metric])["score"]

    def to_dict(self) -> dict[str, dict[str, float]]:
        """``{score: metrics}``, the shape of ``results.json``'s ``scores``."""
        return {r["score"]: {k: v for k, v in r.items() if k != "score"} for r in self.rows}

    def to_markdown(self, metrics: Sequence[str] = ("auroc", "oscr", "aupr_in", "aupr_out", "fpr95")) -> str:
        """A markdown table in percent; the best AUROC is bold."""
        best = self.best() if self.rows else None
        lines = [
            "| score | " + " | ".join(metrics) + " | fit s | score s |",
            "|---" * (len(metrics) + 3) + "|",
        ]
        for r in self.rows:
            name = f"**{r['score']}**" if r["score"] == best else r["score"]
            cells = [f"{100 * r[m]:.1f}" for m in metrics] + [f"{r['fit_s']:.2f}", f"{r['score_s']:.2f}"]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        return "\n".join(lines)


def _options_for(spec: str, options: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """A score's keyword arguments: those given for its name (``knn``), then for its spec (``knn:z``)."""
    name = spec.split(":", 1)[0]
    return {**dict(options.get(name, {})), **(dict(options.get(spec, {})) if spec != name else {})}


def evaluate(
    model_or_features: nn.Module | Callable[[Data], FeatureSet] | None,
    known: Data | FeatureSet,
    unknown: Data | FeatureSet,
    *,
    fit_on: Data | FeatureSet,
    scores: str | Sequence[str | Detector] = DEFAULT_SCORES,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    feature_layer: nn.Module | str | None = None,
    device: torch.device | str | None = None,
    batch_size: int = 256,
    odin: Mapping[str, Any] | None = None,
) -> ScoreTable:
    """Open-set metrics of each score on ``known`` (labelled) vs ``unknown`` samples, every detector fitted on
    ``fit_on`` (known training or validation samples; never the test sets, which is checked).

    ``model_or_features``: a model returning logits (features are extracted once per set with ``extract``), a
    callable ``data -> FeatureSet`` (e.g. a difair run's extractor), or None when the three sets are FeatureSets.
    ``scores``: names (``"all"``, ``"msp,knn"``, a list; see ``difair.eval.posthoc.ALL_SCORES``) or Detector
    objects; ``options`` gives keyword arguments per name (``{"knn": {"k": 10}}``). Scores a set cannot serve (ViM
    without a linear head, ...) are listed in ``ScoreTable.skipped`` with the reason.
    """
    if shares_samples(fit_on, known) or shares_samples(fit_on, unknown):
        raise DifairError(
            "fit_on is one of the test sets: fit the detectors on training (or validation) data only"
        )
    if isinstance(scores, str):
        specs: list[str | Detector] = list(resolve_scores(scores))
    else:
        resolve_scores([s for s in scores if isinstance(s, str)])  # unknown names fail before any extraction
        specs = list(scores)
    t0 = time.perf_counter()
    if isinstance(model_or_features, nn.Module):
        kw = dict(feature_layer=feature_layer, device=device, batch_size=batch_size)
        want_odin = any(s == "odin" or getattr(s, "name", "") == "odin" for s in specs)
        fit = extract(model_or_features, fit_on, **kw)
        kn = extract(model_or_features, known, odin=(odin or True) if want_odin else None, **kw)
        un = extract(
            model_or_features, unknown, unknown=True, odin=(odin or True) if want_odin else None, **kw
        )
    elif model_or_features is not None:
        fit, kn, un = (
            model_or_features(fit_on),
            model_or_features(known),
            model_or_features(unknown).as_unknown(),
        )
    else:
        if not all(isinstance(s, FeatureSet) for s in (known, unknown, fit_on)):
            raise DifairError("without a model, known, unknown and fit_on must be FeatureSets")
        fit, kn, un = fit_on, known, unknown.as_unknown()
    if not kn.is_known_only:
        raise DifairError("the known test set holds samples labelled -1; pass unknown samples as `unknown`")
    if not fit.is_known_only:
        raise DifairError(
            f"fit_on holds {int((fit.labels < 0).sum())} unknown (-1) samples: fit the detectors on known "
            "training (or validation) data only"
        )
    n_out = kn.logits.shape[1]
    for name, fs in (("the known test set", kn), ("fit_on", fit)):
        if len(fs) and int(fs.labels.max()) >= n_out:
            raise DifairError(
                f"{name} holds label {int(fs.labels.max())}, but the model gives {n_out} outputs per sample: labels "
                "must be class indices below the number of logits (a DIFAIR head's z is not logits: use "
                "difair_feature_set, or evaluate a run with difair eval --scores)"
            )
    if not len(un):
        raise DifairError("the unknown test set is empty: open-set metrics need unknown samples")
    test = kn.cat(un)
    table = ScoreTable(rows=[], meta={"n_fit": len(fit), "n_known": len(kn), "n_unknown": len(un)})
    table.meta["extract_s"] = time.perf_counter() - t0
    for spec in specs:
        det = (
            spec if isinstance(spec, Detector) else build_detector(spec, **_options_for(spec, options or {}))
        )
        reason = det.unavailable(test) or (det.needs_fit and (det.unavailable(fit) or det.cannot_fit(fit)))
        if reason:
            table.skipped[det.spec] = reason
            continue
        t1 = time.perf_counter()
        det.fit(fit)
        t2 = time.perf_counter()
        s = det.score(test)
        t3 = time.perf_counter()
        if not torch.isfinite(s).all():
            raise DifairError(f"{det.spec} gave {int((~torch.isfinite(s)).sum())} non-finite scores")
        table.rows.append(
            {
                "score": det.spec,
                **osr_metrics(s, test.predictions, test.labels),
                "fit_s": t2 - t1,
                "score_s": t3 - t2,
            }
        )
    return table
