"""Training: ``fit(config, run_dir)`` trains one run, checkpoints every epoch and writes ``results.json``.

Each epoch's randomness (shuffling, augmentation, dropout) is seeded from ``(seed, epoch)``, so a run resumed
from its last checkpoint ends exactly where an uninterrupted run would (on CPU, same seed).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from difair import __version__
from difair.config import TrainConfig
from difair.data.augment import Augmenter
from difair.data.base import OSRData
from difair.engine import rundir as R
from difair.engine.build import build_model
from difair.engine.evaluate import evaluate_run
from difair.engine.progress import EpochProgress
from difair.engine.schedule import EpochSchedule
from difair.errors import DifairError, TrainingDiverged

EpochCallback = Callable[[dict[str, Any]], None]


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's randomness."""
    return (seed * 1_000_003 + epoch * 7_919 + 1) % (2**63 - 1)


def make_fabric(cfg: TrainConfig):
    from lightning_fabric import Fabric

    try:
        return Fabric(accelerator=cfg.accelerator, devices=cfg.devices, precision=cfg.precision)
    except (ValueError, RuntimeError, TypeError) as exc:
        raise DifairError(
            f"cannot set up accelerator={cfg.accelerator} devices={cfg.devices} precision={cfg.precision}: {exc}"
        ) from exc


def load_data(cfg: TrainConfig, data: OSRData | None) -> OSRData:
    if data is not None:
        return data
    from difair.data import get_dataset

    return get_dataset(cfg.data)


def _optimizer(cfg: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    o = cfg.optim
    return torch.optim.SGD(
        model.parameters(),
        lr=o.lr,
        momentum=o.momentum,
        nesterov=o.nesterov and o.momentum > 0,
        weight_decay=0.0 if o.decoupled_weight_decay else o.weight_decay,
        foreach=o.foreach,
    )


def fit(
    cfg: TrainConfig | None,
    run_dir: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    data: OSRData | None = None,
    show_progress: bool = True,
    on_epoch: EpochCallback | None = None,
) -> dict[str, Any]:
    """Train ``cfg`` into ``run_dir`` (or continue the run there with ``resume``) and return its results."""
    run_dir = Path(run_dir)
    R.prepare_run_dir(run_dir, resume=resume, overwrite=overwrite)
    if resume:
        saved = R.read_run_config(run_dir)
        if cfg is not None and cfg.resolve().digest() != saved.digest():
            raise DifairError(
                f"the options differ from the run saved in {run_dir}: resume without changing them"
            )
        cfg = saved
    else:
        if cfg is None:
            raise DifairError("fit needs a config unless it resumes a run")
        cfg = cfg.resolve()
    data = load_data(cfg, data)
    if not resume:
        R.atomic_write_text(run_dir / R.CONFIG, cfg.to_yaml())

    fabric = make_fabric(cfg)
    torch.manual_seed(cfg.seed)
    model, method = build_model(cfg, data.num_classes, data.channels, data.mean, data.std)
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    optimizer = _optimizer(cfg, model)
    schedule = EpochSchedule(optimizer, cfg.optim.lr, cfg.epochs, cfg.schedule)
    digest = cfg.digest()

    start_epoch = 0
    ckpt_path = run_dir / R.CHECKPOINT
    if resume and ckpt_path.is_file():
        state = R.load_checkpoint(ckpt_path)
        if state.get("config_digest") != digest:
            raise DifairError(
                f"checkpoint {ckpt_path} belongs to another configuration: retrain with --overwrite"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        R.set_rng_state(state["rng"])
        start_epoch = int(state["epoch"]) + 1
        R.truncate_metrics(run_dir, int(state["epoch"]))
    elif resume:
        R.truncate_metrics(run_dir, -1)

    fmodel, optimizer = fabric.setup(model, optimizer)
    device = fabric.device
    train_images = data.train_images.to(device)  # decoded once; resident on the device
    train_labels = data.train_labels.to(device)
    augment = Augmenter(cfg.augment)
    n, bs = len(train_labels), cfg.batch_size
    params = [p for p in model.parameters() if p.requires_grad]
    t_start = time.perf_counter()

    with EpochProgress(
        cfg.epochs, start_epoch, f"{cfg.method} {cfg.data.name}#{cfg.data.split}", show_progress
    ) as bar:
        for epoch in range(start_epoch, cfg.epochs):
            lr = schedule.set_epoch(epoch)
            seed = epoch_seed(cfg.seed, epoch)
            torch.manual_seed(seed)
            gen = torch.Generator().manual_seed(seed)
            fmodel.train()
            perm = torch.randperm(n, generator=gen)
            sums: dict[str, torch.Tensor] = {}
            correct = torch.zeros((), device=device)
            seen, t0 = 0, time.perf_counter()
            for i in range(0, n, bs):
                idx = perm[i : i + bs].to(device)
                if len(idx) < 2:  # BatchNorm cannot train on a single sample
                    continue
                x = augment(train_images[idx], gen).contiguous(memory_format=fmt)
                y = train_labels[idx]
                out = fmodel(x)
                scale = len(idx) / bs if cfg.loss_normalizer == "nominal" else 1.0
                terms = method.loss_terms(out, y, model.head, scale)
                optimizer.zero_grad(set_to_none=True)
                fabric.backward(terms["loss"])
                if cfg.optim.decoupled_weight_decay and cfg.optim.weight_decay:
                    with torch.no_grad():
                        torch._foreach_mul_(params, 1.0 - lr * cfg.optim.weight_decay)
                optimizer.step()
                with torch.no_grad():
                    for k, v in terms.items():
                        sums[k] = sums.get(k, 0) + v.detach().float() * len(idx)
                    correct += (method.predict(out.detach(), model.head) == y).sum()
                seen += len(idx)
            row = {"epoch": epoch, "lr": lr}
            row.update({f"train_{k}": float(v) / max(seen, 1) for k, v in sums.items()})
            row["train_accuracy"] = float(correct) / max(seen, 1)
            row["epoch_time_s"] = round(time.perf_counter() - t0, 4)
            row["images_per_s"] = round(seen / max(row["epoch_time_s"], 1e-9), 1)
            bad = [k for k, v in row.items() if k.startswith("train_") and not math.isfinite(v)]
            if bad:
                kept = (
                    f"the last good checkpoint (after epoch {epoch}) is kept in {ckpt_path}"
                    if epoch
                    else "no checkpoint was written"
                )
                raise TrainingDiverged(
                    f"loss became {row[bad[0]]} in epoch {epoch + 1}; {kept}: lower optim.lr or use precision 32-true"
                )
            if fabric.is_global_zero:
                R.append_metrics(run_dir, row)
                R.save_checkpoint(
                    ckpt_path,
                    {
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "schedule": schedule.state_dict(),
                        "rng": R.rng_state(),
                        "epoch": epoch,
                        "config": cfg.to_dict(),
                        "config_digest": digest,
                        "num_classes": data.num_classes,
                        "channels": data.channels,
                        "mean": data.mean,
                        "std": data.std,
                        "class_names": data.class_names,
                        "difair_version": __version__,
                    },
                )
            bar.advance(row)
            if on_epoch is not None:
                on_epoch(row)
    train_time = time.perf_counter() - t_start
    results = evaluate_run(cfg, model, fmodel, method, data, device)
    results["train_time_s"] = round(train_time, 2)
    if fabric.is_global_zero:
        R.write_json(run_dir / R.RESULTS, results)
    return results
