"""Every post-hoc score on a trained run: ``difair eval RUN --scores all|NAME,...``.

Features (backbone maps, outputs, ODIN's perturbed logits where the method has logits) are extracted once per
split of the data, streamed in fp32, and cached in ``RUN/features/<split>.pt`` next to the checkpoint (keyed by the
checkpoint's digest and epoch and by the split's images); the detectors (``difair.eval.posthoc``) are fitted on
the known training images, or on the held-out validation images when the run has them, and never on test images.
The method's own scores are left as they are; each new score is added to ``results.json["scores"]`` and listed,
with its fit and score times, under ``results.json["posthoc"]``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from difair.data import OSRData
from difair.devices import pick_device
from difair.engine import rundir as R
from difair.engine.batching import eval_chunks
from difair.engine.build import load_data
from difair.engine.evaluate import prepare_evaluation
from difair.engine.feature_cache import cache_key, cached
from difair.engine.hardware import device_type_for
from difair.engine.load import LoadedRun, check_run_data, load_run
from difair.errors import DifairError
from difair.eval.api import ScoreTable, evaluate
from difair.eval.posthoc import FeatureSet, odin_logits, resolve_scores


def extract_split(
    run: LoadedRun, images: Tensor, *, batch_size: int, device: torch.device, odin: bool
) -> dict[str, Tensor]:
    """Backbone maps and outputs of ``images`` (uint8) in fp32 batches, and ODIN's perturbed logits if asked."""
    model = run.model.to(device).eval()
    maps, outs, odin_out = [], [], []
    for chunk in eval_chunks(images, batch_size):
        x = chunk.to(device)
        with torch.no_grad(), torch.autocast(device.type, enabled=False):
            m = model.feature_map(x).float()
            maps.append(m.cpu())
            outs.append(model.head(m).float().cpu())
        if odin:
            odin_out.append(odin_logits(model, x.float().div(255)).float().cpu())
    out = {"maps": torch.cat(maps), "outputs": torch.cat(outs)}
    if odin:
        out["odin"] = torch.cat(odin_out)
    return out


def cached_split(
    run: LoadedRun, name: str, images: Tensor, *, batch_size: int, device: torch.device, odin: bool
) -> dict[str, Tensor]:
    """``extract_split``, read from ``RUN/features/<name>.pt`` when that file holds this checkpoint's features."""

    def compute() -> dict[str, Tensor]:
        return extract_split(run, images, batch_size=batch_size, device=device, odin=odin)

    return cached(run, name, cache_key(run, images, str(odin)), compute)


def feature_sets(
    run: LoadedRun, data: OSRData, wanted: list[str], *, batch_size: int, device: torch.device
) -> tuple[FeatureSet, FeatureSet, FeatureSet, str]:
    """The fit, known-test and unknown-test FeatureSets of a run, and the name of the fit set."""
    method, head = run.method, run.model.head
    odin = method.odin_applies and "odin" in wanted
    known = data.test_labels >= 0
    fit_name = "validation" if data.has_validation else "train"
    fit_images = data.val_images if data.has_validation else data.train_images
    fit_labels = data.val_labels if data.has_validation else data.train_labels
    splits = {
        fit_name: (fit_images, fit_labels, False),
        "test-known": (data.test_images[known], data.test_labels[known], odin),
        "test-unknown": (data.test_images[~known], data.test_labels[~known], odin),
    }
    out = []
    for name, (images, labels, with_odin) in splits.items():
        t = cached_split(run, name, images, batch_size=batch_size, device=device, odin=with_odin)
        head.to("cpu")
        fs = method.feature_set(head, t["maps"], t["outputs"], labels)
        if "odin" in t:
            fs.features["odin"] = t["odin"]
        out.append(fs)
    return out[0], out[1], out[2], fit_name


def score_table(
    run_dir: str | Path,
    scores: str = "all",
    *,
    data: OSRData | None = None,
    device: str | torch.device | None = None,
) -> tuple[ScoreTable, str]:
    """Every score in ``scores`` on the run in ``run_dir``, fitted on its training (or validation) images, and the
    name of that fit split; writes nothing but the feature cache."""
    names = resolve_scores(scores)  # unknown names fail here, before any extraction
    run = load_run(run_dir)
    cfg = run.config
    data = check_run_data(run, load_data(cfg, data))
    dev = pick_device(device) if device is not None else torch.device(device_type_for(cfg.accelerator))
    bs = cfg.eval_batch_size
    prepare_evaluation(run.model, run.model.head, run.method, data, bs, dev)  # CAC: re-centred anchors
    fit, known, unknown, fit_name = feature_sets(run, data, names, batch_size=bs, device=dev)
    return evaluate(None, known, unknown, fit_on=fit, scores=names), fit_name


def score_run_dir(
    run_dir: str | Path,
    scores: str = "all",
    *,
    data: OSRData | None = None,
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """Add every score in ``scores`` to the run's ``results.json`` (which must exist: ``difair eval`` writes it)."""
    resolve_scores(scores)  # unknown names fail before anything is read
    results_path = Path(run_dir) / R.RESULTS
    if not results_path.is_file():
        raise DifairError(f"{run_dir} has no {R.RESULTS}: run difair eval {run_dir} first")
    table, fit_name = score_table(run_dir, scores, data=data, device=device)
    return record(results_path, table, fit_name)


def record(results_path: Path, table: ScoreTable, fit_name: str) -> dict[str, Any]:
    """Merge ``table`` into ``results.json``: new scores into ``scores`` (the method's own stay), and a
    ``posthoc`` block with what was fitted on, the timings and what was skipped."""
    results = json.loads(results_path.read_text())
    before = results.get("posthoc") or {}
    own = set(results.get("scores", {})) - set(before.get("added", []))
    checkpoint = results_path.parent / R.CHECKPOINT
    fingerprint = R.file_fingerprint(checkpoint) if checkpoint.is_file() else ""  # kept while it is the same
    same = (
        bool(fingerprint) and before.get("checkpoint") == fingerprint
    )  # an earlier call's scores still hold
    added = [n for n in before.get("added", []) if n in results.get("scores", {})] if same else []
    timing = dict(before.get("timing_s", {})) if same else {}
    skipped = dict(before.get("skipped", {})) if same else {}
    for row in table.rows:
        name = row["score"]
        metrics = {k: v for k, v in row.items() if k not in ("score", "fit_s", "score_s")}
        if name not in own:
            results.setdefault("scores", {})[name] = metrics
            added += [] if name in added else [name]
            skipped.pop(name, None)
        timing[name] = {"fit": row["fit_s"], "score": row["score_s"]}
    skipped.update(table.skipped)
    results["posthoc"] = {
        "checkpoint": fingerprint,
        "fit_on": fit_name,
        "added": added,
        "timing_s": timing,
        "skipped": skipped,
        "n": dict(table.meta),
    }
    R.write_json(results_path, results)
    return results


__all__ = [
    "score_run_dir",
    "score_table",
    "extract_split",
    "cached_split",
    "feature_sets",
    "record",
]
