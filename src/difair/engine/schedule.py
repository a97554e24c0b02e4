"""Learning-rate schedules, constant within an epoch, as pure functions of the epoch index.

``cosine_restarts_warmup`` is the paper's (Vaze et al.'s) schedule: epoch 0 at the floor, a linear warmup to the
cosine value at the end of warmup, then cosine annealing with ``restarts`` warm restarts (cycle length
``epochs // (restarts + 1)``, 200 epochs for 600) evaluated at ``t = epoch - 1``. ``floor="reference"`` reproduces
the authors' Keras floor ``lr * (lr * ratio)`` instead of ``lr * ratio``.
"""

from __future__ import annotations

import math

import torch

from difair.config import SCHEDULES, ScheduleConfig
from difair.errors import DifairError


def _cosine(base_lr: float, t: int, period: int, eta_min: float, floor: str, ratio: float) -> float:
    phase = 0.5 * (1 + math.cos(math.pi * (t % period) / period))
    if floor == "reference":  # Keras CosineDecayRestarts with alpha = lr*ratio taken as a fraction of lr
        a = base_lr * ratio
        return base_lr * ((1 - a) * phase + a)
    return eta_min + (base_lr - eta_min) * phase


def lr_at_epoch(epoch: int, base_lr: float, epochs: int, cfg: ScheduleConfig) -> float:
    """Learning rate of 0-indexed ``epoch`` in a run of ``epochs`` epochs."""
    if cfg.name == "constant":
        return base_lr
    if (
        cfg.name not in SCHEDULES
    ):  # a name the config accepts but nothing here implements must not fall through
        raise DifairError(f"unknown schedule.name {cfg.name!r}: choose {', '.join(SCHEDULES)}")
    warmup = cfg.warmup_epochs or 0
    restarts = {"cosine_restarts_warmup": cfg.restarts, "cosine_warmup": 0}[cfg.name]
    period = max(1, epochs // (restarts + 1))
    eta_min = base_lr * cfg.min_lr_ratio
    if warmup and epoch <= warmup:
        start = eta_min
        # both codes ramp to the eta_min-form cosine value at the end of warmup
        target = _cosine(base_lr, warmup, period, eta_min, "vaze", cfg.min_lr_ratio)
        return start + epoch * (target - start) / warmup
    t = max(epoch - 1, 0) if warmup else epoch
    return _cosine(base_lr, t, period, eta_min, cfg.floor, cfg.min_lr_ratio)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's learning rate to ``lr`` times its ``lr_scale`` (1 when absent; the backbone's
    group carries ``model.backbone_lr_scale``): the one place that writes it (the training step reads it)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


class EpochSchedule:
    """Sets the optimizer's learning rate at the start of each epoch; its state is the epoch index."""

    def __init__(self, optimizer: torch.optim.Optimizer, base_lr: float, epochs: int, cfg: ScheduleConfig):
        self.optimizer, self.base_lr, self.epochs, self.cfg = optimizer, base_lr, epochs, cfg
        self.epoch = 0

    def set_epoch(self, epoch: int) -> float:
        self.epoch = epoch
        lr = lr_at_epoch(epoch, self.base_lr, self.epochs, self.cfg)
        set_lr(self.optimizer, lr)
        return lr

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "base_lr": self.base_lr, "epochs": self.epochs}

    def load_state_dict(self, state: dict) -> None:
        self.epoch = int(state["epoch"])
