"""Evaluation: stream the test set through a model and compute every score's metrics."""

from __future__ import annotations

import copy
import json
import platform
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from difair.config import TrainConfig
from difair.data.base import OSRData
from difair.engine import rundir as R
from difair.engine.batching import eval_chunks
from difair.engine.build import load_data, make_fabric, memory_format
from difair.engine.execution import auto_record
from difair.engine.load import check_run_data, checkpoint_record, load_run
from difair.engine.threads import num_threads, resolve_cpu_threads
from difair.errors import DifairError
from difair.eval.metrics import osr_metrics
from difair.methods import Method
from difair.version import __version__


@torch.inference_mode()
def collect_outputs(
    model: nn.Module, images: Tensor, batch_size: int, device: torch.device, channels_last: bool = False
) -> Tensor:
    """fp32 model outputs for ``images`` in batches (only the small outputs are kept, never the activations).

    Pass the raw model, not Fabric's wrapper: the outputs are computed in fp32 with autocast off, also for a
    run trained under bf16/fp16 autocast (its weights are fp32), so scores carry no bf16 rounding or ties.
    A model whose weights are low precision (``bf16-true``) is evaluated through an fp32 copy.
    """
    model.eval()
    if any(p.is_floating_point() and p.dtype != torch.float32 for p in model.parameters()):
        model = copy.deepcopy(model).float()
    outs = []
    with torch.autocast(device.type, enabled=False):
        for chunk in eval_chunks(images, batch_size):
            x = chunk.to(device, non_blocking=True)
            if x.is_floating_point():
                x = x.float()
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            outs.append(model(x).float().cpu())
    return torch.cat(outs) if outs else torch.empty(0)


def check_finite_outputs(outputs: Tensor, what: str = "test images") -> None:
    """One line naming a diverged checkpoint when the model's outputs are NaN or infinite."""
    bad = int((~torch.isfinite(outputs)).any(dim=-1).sum()) if outputs.numel() else 0
    if bad:
        raise DifairError(
            f"the model gives non-finite outputs for {bad} of {len(outputs)} {what}: the checkpoint diverged; "
            "retrain it (e.g. with a lower optim.lr)"
        )


def evaluate_outputs(outputs: Tensor, labels: Tensor, method: Method, head: nn.Module) -> dict[str, Any]:
    """Predictions, and the metrics of every score of ``method``, from precomputed test outputs."""
    check_finite_outputs(outputs)
    preds = method.predict(outputs, head)
    scores = method.scores(outputs, head)
    per_score = {name: osr_metrics(s, preds, labels) for name, s in scores.items()}
    return {"per_score": per_score, "preds": preds, "scores": scores}


def subset_metrics(
    result: dict[str, Any], labels: Tensor, masks: dict[str, Tensor], default_score: str
) -> dict[str, Any]:
    """Metrics of every score on each named subset of the test set (``OSRData.unknown_subset_masks``), from
    the predictions and scores of ``evaluate_outputs``: the default score's metrics at the top of each entry,
    every score under ``scores``; a subset without unknown test images gets ``n_unknown: 0`` only."""
    out: dict[str, Any] = {}
    for name, mask in masks.items():
        n_unknown = int((labels[mask] < 0).sum())
        if n_unknown == 0:
            out[name] = {"n_unknown": 0}
            continue
        per_score = {
            s: osr_metrics(v[mask], result["preds"][mask], labels[mask]) for s, v in result["scores"].items()
        }
        out[name] = {**per_score[default_score], "n_unknown": n_unknown, "scores": per_score}
    return out


def evaluate_model(
    raw_model: nn.Module,
    method: Method,
    data: OSRData,
    *,
    batch_size: int,
    device: torch.device,
    channels_last: bool = False,
) -> dict[str, Any]:
    """Evaluate the raw (unwrapped) model on ``data``'s test set, in fp32, after the method's evaluation
    preparation (CAC: anchors re-centred on correct training logits)."""
    prepare_evaluation(raw_model, raw_model.head, method, data, batch_size, device, channels_last)
    outputs = collect_outputs(raw_model, data.test_images, batch_size, device, channels_last)
    result = evaluate_outputs(outputs, data.test_labels, method, raw_model.head)
    result["outputs"] = outputs
    if data.unknown_subsets:
        masks = data.unknown_subset_masks()
        result["unknown_subsets"] = subset_metrics(result, data.test_labels, masks, method.default_score)
    if data.has_validation:
        acc = validation_accuracy(raw_model, raw_model.head, method, data, batch_size, device, channels_last)
        result["validation"] = {"n": len(data.val_labels), "closed_set_accuracy": acc}
    return result


def prepare_evaluation(
    model: nn.Module,
    head: nn.Module,
    method: Method,
    data: OSRData,
    batch_size: int,
    device: torch.device,
    channels_last: bool = False,
) -> None:
    """Run the method's evaluation preparation on the training outputs when it still needs to (once per head)."""
    if method.needs_train_outputs(head):
        train_out = collect_outputs(model, data.train_images, batch_size, device, channels_last)
        method.prepare_evaluation(head, train_out, data.train_labels)


def validation_accuracy(
    model: nn.Module,
    head: nn.Module,
    method: Method,
    data: OSRData,
    batch_size: int,
    device: torch.device,
    channels_last: bool = False,
) -> float:
    """Closed-set accuracy of ``model`` on ``data``'s held-out validation images."""
    out = collect_outputs(model, data.val_images, batch_size, device, channels_last)
    return float((method.predict(out, head) == data.val_labels).double().mean())


def evaluate_run(
    cfg: TrainConfig,
    raw_model: nn.Module,
    method: Method,
    data: OSRData,
    device: torch.device,
    checkpoint: dict[str, Any] | None = None,
    *,
    scores_out: dict[str, Tensor] | None = None,
) -> dict[str, Any]:
    """Metrics of every score of the method on the test set, as the ``results.json`` record; ``checkpoint``
    (``checkpoint_record``) says which epoch the model holds (default: the last, a finished run). ``scores_out``
    (a dict) receives every score of the test images, by name."""
    ev = evaluate_model(
        raw_model,
        method,
        data,
        batch_size=cfg.eval_batch_size,
        device=device,
        channels_last=cfg.channels_last,
    )
    if scores_out is not None:
        scores_out.update(ev["scores"])
    primary = ev["per_score"][method.default_score]
    return {
        "method": cfg.method,
        "dataset": cfg.data.name,
        "split": cfg.data.split,
        "split_family": data.meta.get("split_family", cfg.data.split_family),
        "seed": cfg.seed,
        "score": method.default_score,
        **primary,
        "n_known": data.n_known_test,
        "n_unknown": data.n_unknown_test,
        "n_train": len(data.train_labels),
        "validation": ev.get("validation"),  # None without data.val_fraction
        "epochs": cfg.epochs,
        "checkpoint": checkpoint or checkpoint_record(cfg.epochs, cfg.epochs),
        "scores": ev["per_score"],
        # per named unknown subset (the SSB's difficulties); the top-level metrics are over all unknowns
        **({"unknown_subsets": ev["unknown_subsets"]} if "unknown_subsets" in ev else {}),
        "fidelity": cfg.fidelity(),
        "data": data.summary(),
        "config_digest": cfg.digest(),
        "environment": {
            "difair": __version__,
            "torch": torch.__version__,
            "device": str(device),
            "precision": cfg.precision,
            "channels_last": cfg.channels_last,
            "cpu_allocator": cfg.cpu_allocator,
            "auto": auto_record(cfg),  # what was asked (auto or a value) and what ran
            "python": platform.python_version(),
        },
    }


def evaluate_run_dir(run_dir: str | Path, data: OSRData | None = None) -> dict[str, Any]:
    """Recompute ``results.json`` of a run from its checkpoint (all scores of its method); the checkpoint of an
    unfinished run gives results marked partial (``"checkpoint": {..., "complete": false}``). Computes with the
    run's ``cpu_threads`` (recorded in results.json as training's was), restored after."""
    R.read_run_config(Path(run_dir))  # no run folder: refused before the lock would create one
    with R.run_lock(Path(run_dir)):  # not while the run trains: its results.json would be overwritten after
        return _evaluate_run_dir(run_dir, data)


def _evaluate_run_dir(run_dir: str | Path, data: OSRData | None) -> dict[str, Any]:
    run = load_run(run_dir)
    cfg = run.config
    threads, cfg.auto.cpu_threads = resolve_cpu_threads(cfg)
    with num_threads(threads):
        data = check_run_data(run, load_data(cfg, data))
        fabric = make_fabric(cfg)
        model = run.model.to(memory_format=memory_format(cfg))
        model = model.to(fabric.device)
        checkpoint = run.checkpoint
        results = evaluate_run(cfg, model, run.method, data, fabric.device, checkpoint)
    previous = Path(run_dir) / R.RESULTS
    results["train_time_s"] = _train_time(run.state, previous)
    keep_posthoc(results, Path(run_dir), run.fingerprint)
    R.write_json(previous, results)
    return results


def keep_posthoc(results: dict[str, Any], run_dir: Path, fingerprint: str | None = None) -> None:
    """Carry into ``results`` the post-hoc scores (``difair eval --scores``) of the ``results.json`` it replaces,
    when they were computed on the same checkpoint (``fingerprint``, of ``run_dir``'s checkpoint: read only when
    there are such scores); otherwise warn that they are gone and how to compute them again."""
    previous = run_dir / R.RESULTS
    try:
        old = json.loads(previous.read_text())
    except (OSError, ValueError):
        return
    post = old.get("posthoc") if isinstance(old, dict) else None
    if not isinstance(post, dict):
        return
    names = [n for n in post.get("added", []) if n in old.get("scores", {}) and n not in results["scores"]]
    if fingerprint is None and (run_dir / R.CHECKPOINT).is_file():
        fingerprint = R.file_fingerprint(run_dir / R.CHECKPOINT)
    if fingerprint and post.get("checkpoint") == fingerprint:
        results["scores"].update({n: old["scores"][n] for n in names})
        results["posthoc"] = post
    elif names:
        warnings.warn(
            f"the post-hoc scores of the replaced {previous.name} ({', '.join(names)}) came from another checkpoint "
            f"and were dropped: difair eval {previous.parent} --scores {','.join(names)} computes them again",
            stacklevel=2,
        )


def _train_time(state: dict[str, Any], results_path: Path) -> float | None:
    """The run's training time: kept in its checkpoint (difair > 0.1.0), else in the results.json it replaces."""
    t = state.get("train_time_s")
    if isinstance(t, (int, float)) and not isinstance(t, bool):
        return round(float(t), 2)
    try:  # eval exists to rewrite a results.json that is missing, changed or cut short
        t = json.loads(results_path.read_text()).get("train_time_s")
    except (ValueError, AttributeError, OSError):
        return None
    return t if isinstance(t, (int, float)) and not isinstance(t, bool) else None
