"""The model, optimiser, schedule, augmentation and logging sections of the run configuration, with the words
each option takes."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from difair.config.checks import check_range
from difair.errors import DifairError, check_choice
from difair.nn.backbones import backbone_reads, has_pretrained_weights, pretrained_backbones
from difair.nn.dropout import DROPOUT_BACKENDS, DROPOUT_KINDS
from difair.nn.vgg32 import PADDINGS

SCHEDULES = ("cosine_restarts_warmup", "cosine_warmup", "constant")  # schedule.name: difair.engine.schedule
SCHEDULE_FLOORS = ("vaze", "reference")  # schedule.floor: difair.engine.schedule
RANDAUGMENT_OPS = ("all", "no_geometric")  # augment.randaugment_ops: difair.data.augment
AUGMENT_BACKENDS = ("torchvision", "batched")  # augment.backend: difair.data.augment
CONTRAST_PER = ("sample", "batch")  # augment.contrast_per: difair.data.augment
LOSS_NORMALIZERS = ("batch", "nominal")  # loss_normalizer: difair.engine.loop
CROPS = (
    "pad",
    "resized",
)  # augment.crop: zero-pad + random crop | RandomResizedCrop (difair.data.resized_crop)

PRECISIONS = ("32-true", "bf16-mixed", "16-mixed", "bf16-true")  # what Lightning Fabric runs
AUTO = "auto"  # precision / channels_last chosen per device by difair.engine.execution
# cpu_allocator: system (the C allocator as it is) | retain (freed blocks kept for reuse: difair.engine.allocator)
CPU_ALLOCATORS = ("system", "retain")


@dataclass
class ModelConfig:
    """The ``model`` section: the backbone (``difair.nn.backbones``), its width and dropout, the VGG32 choices of
    docs/fidelity.md, and pretrained weights (docs/transfer.md)."""

    backbone: str = "vgg32"
    width: float = 1.0
    dropout: float = 0.2
    dropout_kind: str = "element"  # element (authors' Keras Dropout) | channel (Vaze's Dropout2d)
    dropout_backend: str = "torch"  # torch (F.dropout) | fast (same mask, drawn ~2.5x faster on CPU)
    padding: str = "symmetric"  # symmetric (PyTorch) | tf (authors' asymmetric stride-2 padding)
    bn_momentum: float = 0.1  # PyTorch convention; the authors' Keras default is 0.01
    bn_eps: float = 1e-5  # the authors' Keras default is 1e-3
    pretrained: bool = False  # ImageNet weights (timm:NAME, resnet18, efficientnet_lite0): docs/transfer.md
    weights: str | None = None  # a local state dict file for the backbone (instead of the libraries' caches)
    freeze_backbone: bool = (
        False  # backbone fixed in eval mode; its feature maps extracted once, the head trained
    )
    backbone_lr_scale: float = (
        1.0  # the backbone's learning rate is optim.lr times this (the head's: optim.lr)
    )

    @property
    def uses_pretrained(self) -> bool:
        """Whether the backbone starts from trained weights (``pretrained`` or ``weights``)."""
        return self.pretrained or bool(self.weights)

    def validate(self) -> None:
        check_choice("model.dropout_kind", self.dropout_kind, DROPOUT_KINDS)
        check_choice("model.dropout_backend", self.dropout_backend, DROPOUT_BACKENDS)
        check_choice("model.padding", self.padding, PADDINGS)
        if not 0 <= self.dropout < 1 or not self.width > 0:
            raise DifairError("model.dropout must be in [0, 1) and model.width > 0")
        if not (math.isfinite(self.backbone_lr_scale) and self.backbone_lr_scale >= 0):
            raise DifairError(f"model.backbone_lr_scale must be a number >= 0, got {self.backbone_lr_scale}")
        unknown = sorted(set(backbone_reads(self.backbone)) - {f.name for f in dataclasses.fields(self)})
        if unknown:  # a registration's reads= names options that do not exist
            raise DifairError(
                f"backbone {self.backbone} reads model.{unknown[0]}, which is no option of model"
            )
        if self.uses_pretrained and not has_pretrained_weights(self.backbone):
            raise DifairError(
                f"backbone {self.backbone} has no pretrained weights: choose model.backbone="
                f"{pretrained_backbones()}, or drop model.pretrained/model.weights"
            )


@dataclass
class OptimConfig:
    """The ``optim`` section: SGD with momentum; its weight decay coupled (PyTorch) or decoupled (the authors'
    Keras)."""

    lr: float = 0.3
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    decoupled_weight_decay: bool = False  # True: the authors' Keras decay w <- w - lr*wd*w on all parameters
    foreach: bool = True

    def validate(self) -> None:
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise DifairError(f"optim.lr must be a finite number > 0, got {self.lr}")
        if not math.isfinite(self.weight_decay) or self.weight_decay < 0 or not 0 <= self.momentum < 1:
            raise DifairError("optim.weight_decay must be >= 0 and optim.momentum in [0, 1)")


@dataclass
class ScheduleConfig:
    """The ``schedule`` section: the learning rate per epoch (``difair.engine.schedule``), the paper's cosine with
    warm restarts and warmup by default."""

    name: str = "cosine_restarts_warmup"  # cosine_restarts_warmup | cosine_warmup | constant
    warmup_epochs: int | None = None  # None: 10 epochs per 600 (at least 1)
    restarts: int = 2
    min_lr_ratio: float = 1e-3
    floor: str = "vaze"  # vaze: min lr = lr*ratio | reference: the authors' Keras floor lr*(lr*ratio)

    def validate(self, epochs: int) -> None:
        check_choice("schedule.name", self.name, SCHEDULES)
        check_choice("schedule.floor", self.floor, SCHEDULE_FLOORS)
        if self.restarts < 0 or (self.warmup_epochs or 0) < 0:
            raise DifairError("schedule.restarts and schedule.warmup_epochs must be >= 0")
        if self.warmup_epochs is not None and self.warmup_epochs >= epochs > 1:
            raise DifairError(f"schedule.warmup_epochs ({self.warmup_epochs}) must be < epochs ({epochs})")

    def resolve(self, epochs: int) -> None:
        """Fill the derived warmup (10 epochs per 600, at least 1) when unset."""
        if self.warmup_epochs is None:
            self.warmup_epochs = max(1, round(epochs * 10 / 600)) if epochs > 1 else 0


@dataclass
class AugmentConfig:
    """The ``augment`` section: RandAugment, the pad-and-crop or resized crop, the flip and the authors' MNIST
    jitter, per image (``difair.data.augment``)."""

    randaugment_n: int = 1
    randaugment_m: int = 6
    randaugment_ops: str = "all"  # all | no_geometric (SVHN in the authors' code)
    crop_padding: int = 4
    crop: str = (
        "pad"  # pad (zero-pad by crop_padding, random crop) | resized (RandomResizedCrop to the input size)
    )
    crop_scale: list[float] = field(default_factory=lambda: [0.08, 1.0])  # resized: area fraction range
    crop_ratio: list[float] = field(default_factory=lambda: [3 / 4, 4 / 3])  # resized: aspect ratio range
    hflip: bool = True
    backend: str = "torchvision"  # torchvision (per-image reference ops) | batched (difair.data.randaugment)
    contrast: float = (
        0.0  # Keras RandomContrast: x' = (x - mean) * f + mean, f ~ U[1-c, 1+c] (authors' MNIST: 0.5)
    )
    contrast_per: str = (
        "sample"  # sample (one factor per image) | batch (the authors' Keras layer: one per batch)
    )
    brightness: float = 0.0  # Keras RandomBrightness: x' = x + U[-b, b] * 255 per image (authors' MNIST: 0.5)

    def validate(self) -> None:
        if self.randaugment_n < 0 or not 0 <= self.randaugment_m <= 30 or self.crop_padding < 0:
            raise DifairError("augment: randaugment_n >= 0, randaugment_m in [0, 30], crop_padding >= 0")
        check_choice("augment.randaugment_ops", self.randaugment_ops, RANDAUGMENT_OPS)
        check_choice("augment.backend", self.backend, AUGMENT_BACKENDS)
        check_choice("augment.contrast_per", self.contrast_per, CONTRAST_PER)
        check_choice("augment.crop", self.crop, CROPS)
        lo, hi = check_range("augment.crop_scale", self.crop_scale)
        if not 0 < lo <= hi <= 1:
            raise DifairError(f"augment.crop_scale must satisfy 0 < low <= high <= 1, got {self.crop_scale}")
        lo, hi = check_range("augment.crop_ratio", self.crop_ratio)
        if not 0 < lo <= hi:
            raise DifairError(f"augment.crop_ratio must satisfy 0 < low <= high, got {self.crop_ratio}")
        if not (0 <= self.contrast <= 1 and 0 <= self.brightness <= 1):
            raise DifairError(
                f"augment.contrast and augment.brightness must be in [0, 1], got {self.contrast} and {self.brightness}"
            )


@dataclass
class AutoRecord:
    """How the engine resolved options the user left at ``auto`` (empty: the user chose the value).

    Filled by ``difair.engine.execution`` when a run starts; the resolved values are in ``precision`` and
    ``channels_last`` themselves, so a resumed run computes exactly as it started.
    """

    precision: str = ""
    channels_last: str = ""
    # data.cache: the memory/stream choice, the decoded size and the budget it was held against
    cache: str = ""
    cpu_threads: str = ""  # cpu_threads=auto: the count each process computes with, and why


@dataclass
class LoggingConfig:
    """Where a run reports while it trains (an execution choice: not part of the digest, so turning it on or off
    never changes which run a folder holds)."""

    # auto (on when the tensorboard package is installed) | true | false: event files in RUN/tensorboard/
    tensorboard: bool | str = AUTO

    def validate(self) -> None:
        if self.tensorboard not in (True, False, AUTO):
            raise DifairError(f"logging.tensorboard takes true, false or auto, got {self.tensorboard!r}")
