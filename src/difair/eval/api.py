"""One evaluation API for any model and data: extract features once, fit each score on ``fit_on``, tabulate metrics.

``evaluate(model, known, unknown, fit_on=train, scores=[...])`` works on any classifier that returns logits (a
plain torchvision model included) with DataLoaders, datasets or tensors, and on precomputed FeatureSets.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from difair.errors import DifairError
from difair.eval.extraction import Data, extract
from difair.eval.metrics import osr_metrics
from difair.eval.overlap import shares_samples
from difair.eval.posthoc import Detector, FeatureSet, build_detector, resolve_scores

__all__ = ["evaluate", "ScoreTable", "DEFAULT_SCORES"]

#: Scores of ``evaluate`` when none are named: the output scores and the two feature scores most often reported.
DEFAULT_SCORES = ("msp", "mls", "energy", "knn", "mahalanobis")


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
        if not self.rows:
            why = "; ".join(f"{k}: {v}" for k, v in self.skipped.items()) or "no score was asked for"
            raise DifairError(f"the table has no scores ({why}): there is no best one")
        if metric not in self.rows[0]:
            raise DifairError(
                f"no metric {metric!r}: choose one of {', '.join(k for k in self.rows[0] if k != 'score')}"
            )
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
        fit = extract(model_or_features, fit_on, name="fit_on", **kw)
        kn = extract(model_or_features, known, odin=(odin or True) if want_odin else None, name="known", **kw)
        un = extract(
            model_or_features,
            unknown,
            unknown=True,
            odin=(odin or True) if want_odin else None,
            name="unknown",
            **kw,
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
