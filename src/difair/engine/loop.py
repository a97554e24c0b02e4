"""The engine's hot loop as plain functions: one training step, one epoch over a batch iterator, one seeded
epoch with its metrics row (``run_epoch``) and the checks after it.

``fit`` drives these with a run folder, checkpoints and a schedule; benchmarks call them directly
(``build_loop(cfg, data)``, ``set_lr(loop.optimizer, lr)``, then ``train_one_epoch(loop, batches, generator)``), so what is timed is exactly
the code path that trains runs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from difair.config import TrainConfig
from difair.data.augment import Augmenter
from difair.data.base import OSRData
from difair.engine import ddp
from difair.engine.allocator import apply_cpu_allocator
from difair.engine.batching import eval_chunks
from difair.engine.build import build_model, make_fabric, make_optimizer, memory_format
from difair.engine.evaluate import validation_accuracy
from difair.engine.execution import resolve_channels_last, resolve_precision
from difair.engine.threads import apply_cpu_threads
from difair.errors import TrainingDiverged
from difair.methods import Method
from difair.nn.backbones import OSRModel


@dataclass
class TrainLoop:
    """Everything one training step needs; ``model`` is the raw module, ``fmodel`` what runs (Fabric/DDP/compiled)."""

    cfg: TrainConfig
    fabric: Any
    model: OSRModel
    fmodel: nn.Module
    method: Method
    optimizer: torch.optim.Optimizer
    augment: Augmenter
    images: Tensor  # uint8 [N, C, H, W], resident on the device (data.cache=stream: a StreamImages)
    labels: Tensor
    rank: int = 0
    world_size: int = 1
    params: list[Tensor] = field(default_factory=list)
    features: Tensor | None = (
        None  # model.freeze_backbone: the backbone's maps of ``images``, the head's input
    )

    def __post_init__(self) -> None:
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.memory_format = memory_format(self.cfg)

    @property
    def device(self) -> torch.device:
        return self.images.device


@dataclass
class EpochStats:
    """Per-sample sums of the loss terms, correct predictions and samples seen by this process."""

    sums: dict[str, Tensor] = field(default_factory=dict)
    correct: Tensor | None = None
    seen: int = 0
    steps: int = 0


def setup_loop(
    cfg: TrainConfig,
    fabric: Any,
    model: OSRModel,
    method: Method,
    optimizer: torch.optim.Optimizer,
    images: Tensor,
    labels: Tensor,
) -> TrainLoop:
    """Wrap model and optimizer with Fabric (optionally compiled), move the uint8 data to the device.

    With ``model.freeze_backbone`` what trains is the head alone: the backbone's feature maps of the (unaugmented)
    training images are extracted once here and the head is the module Fabric wraps.
    """
    device = fabric.device
    apply_cpu_allocator(cfg.cpu_allocator, device.type)  # process-wide; before the first step allocates
    features = None
    if cfg.model.freeze_backbone:
        features = backbone_features(model, images, cfg.eval_batch_size, device, memory_format(cfg))
    trained = model.head if features is not None else model
    runnable: nn.Module = (
        torch.compile(trained) if cfg.compile else trained
    )  # Fabric re-applies it after wrapping
    fmodel, optimizer = fabric.setup(runnable, optimizer)
    return TrainLoop(
        cfg=cfg,
        fabric=fabric,
        model=model,
        fmodel=fmodel,
        method=method,
        optimizer=optimizer,
        augment=Augmenter(cfg.augment),
        images=images.to(device),  # decoded once; resident on the device
        labels=labels.to(device),
        rank=fabric.global_rank,
        world_size=fabric.world_size,
        features=features,
    )


@torch.no_grad()
def backbone_features(
    model: OSRModel, images: Tensor, batch_size: int, device: torch.device, fmt: torch.memory_format
) -> Tensor:
    """The frozen backbone's feature maps ``[N, C', h, w]`` (fp32, on ``device``) of uint8 ``images``, in eval
    mode, ``batch_size`` images at a time."""
    model.backbone.eval()
    model.to(device)
    chunks = [
        model.feature_map(chunk.to(device).contiguous(memory_format=fmt)).float()
        for chunk in eval_chunks(images, batch_size)
    ]
    return torch.cat(chunks) if chunks else torch.empty(0)


def build_loop(cfg: TrainConfig, data: OSRData, fabric: Any | None = None) -> TrainLoop:
    """A fresh model, optimizer and loop for ``cfg`` on ``data``, without a run folder (benchmarks, tests)."""
    cfg = resolve_precision(cfg.resolve())
    fabric = fabric or make_fabric(cfg)
    shape = tuple(data.train_images.shape[1:])
    apply_cpu_threads(cfg)
    cfg = resolve_channels_last(cfg, shape, data.num_classes, fabric.device.type)
    torch.manual_seed(cfg.seed)
    model, method = build_model(cfg, data.num_classes, data.channels, data.mean, data.std)
    model = model.to(memory_format=memory_format(cfg))
    optimizer = make_optimizer(cfg, model)
    return setup_loop(cfg, fabric, model, method, optimizer, data.train_images, data.train_labels)


def epoch_batches(perm: Tensor, batch_size: int, rank: int = 0, world_size: int = 1) -> Iterator[Tensor]:
    """This process's index batches of one epoch: global batch ``perm[i:i+batch_size]``, every
    ``world_size``-th sample of it from ``rank`` on. A global batch too small to give each process two samples
    (BatchNorm cannot train on one) is skipped by all processes alike."""
    for i in range(0, len(perm), batch_size):
        chunk = perm[i : i + batch_size]
        if len(chunk) < 2 * world_size:
            continue
        yield chunk[rank::world_size] if world_size > 1 else chunk


def train_step(loop: TrainLoop, idx: Tensor, lr: float, generator: torch.Generator | None) -> dict[str, Any]:
    """Augment, forward, loss, backward and an SGD step on the samples ``idx``; returns outputs and terms."""
    cfg = loop.cfg
    idx = idx.to(loop.device)
    if loop.features is not None:  # frozen backbone: the head on the cached maps (no augmentation)
        x = loop.features[idx]
    else:
        x = loop.augment(loop.images[idx], generator).contiguous(memory_format=loop.memory_format)
    y = loop.labels[idx]
    out = loop.fmodel(x)
    # nominal: sum / (per-process nominal batch), so DDP's gradient mean equals the single-process sum / batch
    nominal = cfg.batch_size / loop.world_size
    scale = len(idx) / nominal if cfg.loss_normalizer == "nominal" else 1.0
    terms = loop.method.loss_terms(out, y, loop.model.head, scale)
    loop.optimizer.zero_grad(set_to_none=True)
    loop.fabric.backward(terms["loss"])
    if cfg.optim.decoupled_weight_decay and cfg.optim.weight_decay:
        with torch.no_grad():  # each group at its own learning rate (model.backbone_lr_scale)
            for group in loop.optimizer.param_groups:
                torch._foreach_mul_(list(group["params"]), 1.0 - group["lr"] * cfg.optim.weight_decay)
    loop.optimizer.step()
    return {"outputs": out, "labels": y, "terms": terms}


def train_one_epoch(
    loop: TrainLoop, batches: Iterable[Tensor], generator: torch.Generator | None
) -> EpochStats:
    """Train on every index batch of ``batches`` (one epoch, or a timed window of steps) at the optimizer's
    learning rate (set by the schedule: ``difair.engine.schedule.set_lr``)."""
    lr = float(loop.optimizer.param_groups[0]["lr"])
    loop.fmodel.train()
    stats = EpochStats(correct=torch.zeros((), device=loop.device))
    prefetch = getattr(loop.images, "prefetch", None)  # data.cache=stream: decode these batches ahead
    for idx in prefetch(batches) if prefetch is not None else batches:
        step = train_step(loop, idx, lr, generator)
        n = len(idx)
        with torch.no_grad():
            for k, v in step["terms"].items():
                stats.sums[k] = stats.sums.get(k, 0) + v.detach().float() * n
            stats.correct += (
                loop.method.predict(step["outputs"].detach(), loop.model.head) == step["labels"]
            ).sum()
        stats.seen += n
        stats.steps += 1
    return stats


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's randomness."""
    return (seed * 1_000_003 + epoch * 7_919 + 1) % (2**63 - 1)


def run_epoch(loop: TrainLoop, epoch: int) -> dict[str, Any]:
    """Train epoch ``epoch`` (seeded from ``(seed, epoch)``, per rank) at the learning rate the schedule set,
    and return its metrics row."""
    lr = float(loop.optimizer.param_groups[0]["lr"])
    seed = epoch_seed(loop.cfg.seed, epoch)
    torch.manual_seed(ddp.rank_seed(seed, loop.rank))
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(loop.labels), generator=gen)  # the same on every rank
    if loop.rank:
        gen = torch.Generator().manual_seed(ddp.rank_seed(seed, loop.rank))
    t0 = time.perf_counter()
    stats = train_one_epoch(loop, epoch_batches(perm, loop.cfg.batch_size, loop.rank, loop.world_size), gen)
    sums, correct, seen = stats.sums, stats.correct, stats.seen
    if loop.world_size > 1:
        sums, correct, seen = ddp.reduce_epoch_sums(loop.fabric, sums, correct, seen)
    row: dict[str, Any] = {
        "epoch": epoch + 1,
        "epochs": loop.cfg.epochs,
        "lr": lr,
    }  # "epoch 3/10", as messages
    row.update({f"train_{k}": float(v) / max(seen, 1) for k, v in sums.items()})
    row["train_accuracy"] = float(correct) / max(seen, 1)
    row["epoch_time_s"] = round(time.perf_counter() - t0, 4)
    row["images_per_s"] = round(seen / max(row["epoch_time_s"], 1e-9), 1)
    return row


def epoch_validation_accuracy(loop: TrainLoop, data: OSRData) -> float:
    """Validation accuracy after an epoch, on rank 0, from the raw model in fp32 (under DDP the wrapped forward
    would wait for the other ranks)."""
    cfg = loop.cfg
    return validation_accuracy(
        loop.model, loop.model.head, loop.method, data, cfg.eval_batch_size, loop.device, cfg.channels_last
    )


def check_finite(row: dict[str, Any], epoch: int, ckpt_path: Path) -> None:
    """Raise ``TrainingDiverged`` when a loss term of the epoch's row is NaN or infinite."""
    bad = [k for k, v in row.items() if k.startswith("train_") and not math.isfinite(v)]
    if bad:  # the sums are reduced over ranks, so every rank stops here alike
        kept = (
            f"the last good checkpoint (after epoch {epoch}) is kept in {ckpt_path}"
            if epoch
            else "no checkpoint was written"
        )
        raise TrainingDiverged(
            f"loss became {row[bad[0]]} in epoch {epoch + 1}; {kept}: lower optim.lr or use precision 32-true"
        )
