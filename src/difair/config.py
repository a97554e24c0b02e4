"""Typed run configuration: dataclasses, validated once at the edge, saved with every run.

``TrainConfig.from_dict`` builds a config from nested dicts (a preset file, a saved run), ``apply_overrides``
applies ``key=value`` strings with dotted keys (``optim.lr=0.1``), ``resolve`` fills derived values (radius,
warmup) and ``validate`` raises one ``DifairError`` per problem, naming the fix.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from difair.errors import DifairError, check_choice
from difair.methods import CACConfig, CEConfig, DifairConfig, check_method_name, options_section
from difair.nn.backbones import (
    backbone_reads,
    has_pretrained_weights,
    pretrained_backbones,
    pretrained_data_config,
)
from difair.nn.dropout import DROPOUT_BACKENDS, DROPOUT_KINDS
from difair.nn.vgg32 import PADDINGS
from difair.options import apply_overrides as apply_overrides  # re-exported: part of the config API
from difair.options import build_dataclass, load_yaml

SPLIT_FAMILIES = ("vaze", "neal")  # data.split_family: the split lists of difair.data.splits
BALANCE_MODES = ("without_replacement", "with_replacement", "none")  # data.balance: data.base.balance_indices
TINYIMAGENET_ORDERS = ("sorted", "wnids")  # data.tinyimagenet_order: difair.data.tinyimagenet
CIFAR_PLUS_KNOWN = ("split", "vehicles")  # data.cifar_plus_known: difair.data.splits.get_known_classes
SCHEDULES = ("cosine_restarts_warmup", "cosine_warmup", "constant")  # schedule.name: difair.engine.schedule
SCHEDULE_FLOORS = ("vaze", "reference")  # schedule.floor: difair.engine.schedule
RANDAUGMENT_OPS = ("all", "no_geometric")  # augment.randaugment_ops: difair.data.augment
AUGMENT_BACKENDS = ("torchvision", "batched")  # augment.backend: difair.data.augment
CONTRAST_PER = ("sample", "batch")  # augment.contrast_per: difair.data.augment
LOSS_NORMALIZERS = ("batch", "nominal")  # loss_normalizer: difair.engine.loop


NORMALIZATIONS = ("auto", "train", "reference", "pretrained")  # data.normalization
MIN_IMAGE_SIZE = 4  # the smallest input the backbones' strided convolutions take
MAX_IMAGE_SIZE = 448  # the largest data.image_size accepted (full-resolution transfer: docs/transfer.md)
# An evaluation batch holds at most this many pixels (per channel): eval_batch_size images up to 64x64 px, fewer
# above (41 at 224 px, 10 at 448 px), so that evaluating at full resolution does not allocate gigabytes per layer.
EVAL_BATCH_PIXELS = 512 * 64 * 64
CROPS = (
    "pad",
    "resized",
)  # augment.crop: zero-pad + random crop | RandomResizedCrop (difair.data.resized_crop)
CACHES = ("auto", "memory", "stream")  # data.cache: difair.data.folder.resolve_cache
MEMORY_BUDGET_FRACTION = 0.5  # data.memory_budget_gb=null: this fraction of the RAM available at the start


def _hash(identity: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested dict as dotted keys."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


@dataclass
class DataConfig:
    name: str = "digits"
    split: int = 0
    root: str | None = None  # None: $DIFAIR_DATA, else ~/.cache/difair-data
    image_size: int | None = None  # None: the dataset's own size
    split_family: str = "vaze"  # vaze (ARPL/Vaze/DIFAIR lists) | neal (Neal et al./CAC lists)
    tinyimagenet_order: str = (
        "sorted"  # sorted wnids (Vaze) | wnids (wnids.txt line order, the DIFAIR authors)
    )
    # vehicles ([0,1,8,9]: the paper's Neal et al. setting, and the authors' code) | split (per-split lists, Vaze)
    cifar_plus_known: str = "vehicles"
    balance: str = "without_replacement"  # without_replacement | with_replacement | none
    balance_seed: int = 0
    val_fraction: float = (
        0.0  # known training images held out for calibration (0: the paper, whole train set)
    )
    val_seed: int = 0
    # auto (pretrained when the backbone is, else train) | train (statistics of the split's training images) |
    # reference (authors' constants) | pretrained (the backbone's pretrained mean/std)
    normalization: str = "auto"
    crop_pct: float | None = (
        None  # resize to size/crop_pct, centre crop size; None: the backbone's when pretrained, else 1
    )
    known: list[str] | None = None  # folder:PATH datasets: known class names (or indices as strings)
    download: bool = False
    # folder:PATH training images: auto (memory when the decoded pixels fit data.memory_budget_gb, else stream) |
    # memory (the decode-once cache, resident) | stream (decoded per batch in data.workers processes)
    cache: str = "auto"
    memory_budget_gb: float | None = None  # None: MEMORY_BUDGET_FRACTION of the available RAM
    # stream mode's decoding processes; None: min(8, the process's CPU share - 1), 0: in the loop
    workers: int | None = None

    def validate(self) -> None:
        check_choice("data.split_family", self.split_family, SPLIT_FAMILIES)
        check_choice("data.tinyimagenet_order", self.tinyimagenet_order, TINYIMAGENET_ORDERS)
        check_choice("data.cifar_plus_known", self.cifar_plus_known, CIFAR_PLUS_KNOWN)
        check_choice("data.balance", self.balance, BALANCE_MODES)
        check_choice("data.normalization", self.normalization, NORMALIZATIONS)
        if self.crop_pct is not None and not 0 < self.crop_pct <= 1:
            raise DifairError(
                f"data.crop_pct must be in (0, 1], got {self.crop_pct}: 1 keeps the whole image"
            )
        if not 0 <= self.val_fraction < 1:
            raise DifairError(f"data.val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.split < 0:
            raise DifairError(f"data.split must be >= 0, got {self.split}")
        folder = is_folder(self.name)
        if self.known is not None and not folder:
            raise DifairError(
                f"data.known applies to folder:PATH datasets; {self.name}'s known classes come from its split "
                "lists: choose them with --split (data.split)"
            )
        if folder and self.split != 0:
            raise DifairError(
                "a folder:PATH dataset has one split, set by data.known: drop --split (data.split)"
            )
        if self.image_size is not None and self.image_size < MIN_IMAGE_SIZE:
            raise DifairError(
                f"data.image_size must be >= {MIN_IMAGE_SIZE}, got {self.image_size}: leave it unset for the dataset's own size"
            )
        if self.image_size is not None and self.image_size > MAX_IMAGE_SIZE:
            raise DifairError(
                f"data.image_size must be <= {MAX_IMAGE_SIZE}, got {self.image_size}: choose a size up to {MAX_IMAGE_SIZE}"
            )
        check_choice("data.cache", self.cache, CACHES)
        if self.cache == "stream" and not folder:
            raise DifairError(
                f"data.cache=stream applies to folder:PATH datasets; {self.name} is loaded whole: drop data.cache"
            )
        if self.memory_budget_gb is not None and not (
            math.isfinite(self.memory_budget_gb) and self.memory_budget_gb > 0
        ):
            raise DifairError(f"data.memory_budget_gb must be a number > 0, got {self.memory_budget_gb}")
        if self.workers is not None and (not isinstance(self.workers, int) or self.workers < 0):
            raise DifairError(f"data.workers must be a whole number >= 0, got {self.workers!r}")


@dataclass
class ModelConfig:
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
        if self.uses_pretrained and not has_pretrained_weights(self.backbone):
            raise DifairError(
                f"backbone {self.backbone} has no pretrained weights: choose model.backbone="
                f"{pretrained_backbones()}, or drop model.pretrained/model.weights"
            )


@dataclass
class OptimConfig:
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
        lo, hi = _range("augment.crop_scale", self.crop_scale)
        if not 0 < lo <= hi <= 1:
            raise DifairError(f"augment.crop_scale must satisfy 0 < low <= high <= 1, got {self.crop_scale}")
        lo, hi = _range("augment.crop_ratio", self.crop_ratio)
        if not 0 < lo <= hi:
            raise DifairError(f"augment.crop_ratio must satisfy 0 < low <= high, got {self.crop_ratio}")
        if not (0 <= self.contrast <= 1 and 0 <= self.brightness <= 1):
            raise DifairError(
                f"augment.contrast and augment.brightness must be in [0, 1], got {self.contrast} and {self.brightness}"
            )


# Options added after difair 0.1.0, each with the values that do what runs did before the option existed. A
# config holding one of them is hashed without the option, so the config digest of a run folder written by an
# older version still matches its checkpoint (tests/test_digest_compat.py checks 0.1.0's digests).
DIGEST_NEUTRAL: dict[str, tuple[Any, ...]] = {
    "data.crop_pct": (None, 1.0),  # None: unresolved (resolves to 1.0 without pretrained weights)
    "model.pretrained": (False,),
    "model.weights": (None,),
    "model.freeze_backbone": (False,),
    "model.backbone_lr_scale": (1.0,),
    "ce.label_smoothing_form": ("pytorch",),
    "augment.crop": ("pad",),
    "augment.crop_scale": ([0.08, 1.0],),
    "augment.crop_ratio": ([3 / 4, 4 / 3],),
}

# Options read by some datasets alone (the name prefixes), and the value the digest hashes for every other dataset:
# their value under difair 0.1.0, so that a change of their default (cifar_plus_known: split -> vehicles) moves the
# digests of the runs it concerns and of no others (tests/test_digest_compat.py).
DATASET_OPTIONS: dict[str, tuple[tuple[str, ...], Any]] = {
    "data.cifar_plus_known": (("cifar+",), "split"),
}

# How a run computes, not what it learns: left out of the config digest, so a run folder is found again and
# resumes under other execution choices.
EXECUTION_OPTIONS = (
    "accelerator",
    "devices",
    "eval_batch_size",
    "compile",
    "cpu_allocator",
    "cpu_threads",
    "logging",
)

PRECISIONS = ("32-true", "bf16-mixed", "16-mixed", "bf16-true")  # what Lightning Fabric runs
AUTO = "auto"  # precision / channels_last chosen per device by difair.engine.execution
# cpu_allocator: system (the C allocator as it is) | retain (freed blocks kept for reuse: difair.engine.allocator)
CPU_ALLOCATORS = ("system", "retain")


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


@dataclass
class TrainConfig:
    method: str = "difair"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    difair: DifairConfig = field(default_factory=DifairConfig)
    cac: CACConfig = field(default_factory=CACConfig)
    ce: CEConfig = field(default_factory=CEConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    epochs: int = 600
    batch_size: int = 128
    eval_batch_size: int = 512  # the most images per evaluation batch; fewer at large sizes (eval_batch)
    seed: int = 0
    precision: str = "32-true"  # auto | 32-true | bf16-mixed | 16-mixed | bf16-true
    accelerator: str = "auto"  # auto | cpu | cuda | mps
    devices: int = 1
    channels_last: bool | str = False  # true | false | auto (a timed probe on CPU, true on CUDA)
    compile: bool = False  # torch.compile the model (an execution choice: not part of the digest)
    # system | retain: CPU runs keep freed blocks (process-wide; not in the digest)
    cpu_allocator: str = "system"
    # auto (PyTorch's count, lowered to the CPUs a cgroup quota leaves: difair.engine.threads) | N; not in the digest
    cpu_threads: int | str = AUTO
    loss_normalizer: str = "batch"  # batch (mean) | nominal (sum / batch_size, the authors' code)
    logging: LoggingConfig = field(default_factory=LoggingConfig)  # execution choice: not in the digest
    auto: AutoRecord = field(default_factory=AutoRecord)  # filled by the engine: how "auto" was resolved

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return build_dataclass(cls, data)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_yaml(cls, text: str) -> TrainConfig:
        data = load_yaml(text) or {}
        if not isinstance(data, dict):
            raise DifairError("a config file must hold a mapping of options: see docs/configuration.md")
        return cls.from_dict(data)

    def digest(self) -> str:
        """Hash of everything that determines what is trained (``identity``)."""
        return _hash(self.identity())

    def digests(self) -> set[str]:
        """``digest`` and the digests a checkpoint of this config may hold from earlier versions: those that hashed
        a ``DATASET_OPTIONS`` option at its own value for every dataset (an old ``--authors-code`` run's
        ``cifar_plus_known: vehicles`` on MNIST). What a checkpoint's ``config_digest`` is checked against."""
        return {self.digest(), _hash(self.identity(per_dataset=False))}

    def check_new_run(self) -> None:
        """Refuse combinations a new run must not train; a run folder that holds one still loads and evaluates."""
        if self.model.freeze_backbone and self.model.backbone_lr_scale != 1.0:
            raise DifairError(
                f"model.backbone_lr_scale={self.model.backbone_lr_scale} scales the lr of a backbone that trains; "
                "model.freeze_backbone=true trains none: drop one of them"
            )
        d = self.data
        if d.name == "tinyimagenet" and d.split_family == "neal" and d.tinyimagenet_order == "wnids":
            raise DifairError(
                "data.tinyimagenet_order=wnids is the DIFAIR authors' order for the vaze lists; the neal (CAC) Tiny "
                "ImageNet lists index sorted wnids: add --set data.tinyimagenet_order=sorted"
            )

    def difference(self, other: TrainConfig) -> str | None:
        """The first option whose ``identity`` value differs from ``other``'s, as ``"key: mine | theirs"``; None
        when both train alike (same digest)."""
        mine, theirs = _flat(self.identity()), _flat(other.identity())
        key = next((k for k in sorted({*mine, *theirs}) if mine.get(k) != theirs.get(k)), None)
        return None if key is None else f"{key}: {mine.get(key)} | {theirs.get(key)}"

    def identity(self, per_dataset: bool = True) -> dict[str, Any]:
        """The options that determine what is trained, as nested dicts: device choices, ``logging`` and paths
        excluded. Options resolved from ``auto`` enter as ``auto`` (what was asked), so a request and the run it
        made are the same on every machine."""
        d = self.to_dict()
        for key in EXECUTION_OPTIONS:
            d.pop(key, None)
        auto = d.pop("auto")
        for key in ("precision", "channels_last"):
            if auto[key]:
                d[key] = AUTO
        for key in ("root", "download", "cache", "memory_budget_gb", "workers"):  # same pixels either way
            d["data"].pop(key, None)
        for option, (datasets, hashed) in DATASET_OPTIONS.items() if per_dataset else ():
            section, key = option.split(".")  # read by those datasets alone
            if not str(d["data"].get("name", "")).startswith(datasets):
                d[section][key] = hashed
        for option, neutral in DIGEST_NEUTRAL.items():
            section, key = option.split(".")
            value = d[section].get(key)
            if any(value == v and type(value) is type(v) for v in neutral):
                d[section].pop(key)
        return d

    # ------------------------------------------------------------------ derived values
    def resolve(self) -> TrainConfig:
        """A copy with derived values filled in (radius, warmup epochs); validated."""
        cfg = TrainConfig.from_dict(self.to_dict())
        cfg.validate()
        cfg.difair.resolve()
        cfg.schedule.resolve(cfg.epochs)
        _resolve_pretrained_data(cfg)
        if (
            is_folder(cfg.data.name)
            and cfg.data.root is None
            and not folder_path(cfg.data.name).is_absolute()
        ):
            cfg.data.root = str(Path.cwd())  # a relative folder:PATH is found from any working directory
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Raise one ``DifairError`` per problem, naming the fix: the run's own options, then each section."""
        check_method_name(self.method)
        check_choice("precision", self.precision, (AUTO, *PRECISIONS))
        if self.channels_last not in (True, False, AUTO):
            raise DifairError(f"channels_last takes true, false or auto, got {self.channels_last!r}")
        check_choice("loss_normalizer", self.loss_normalizer, LOSS_NORMALIZERS)
        check_choice("cpu_allocator", self.cpu_allocator, CPU_ALLOCATORS)
        if self.cpu_threads != AUTO:
            _positive("cpu_threads", self.cpu_threads, "or auto")
        _positive("epochs", self.epochs)
        _positive("batch_size", self.batch_size)
        _positive("eval_batch_size", self.eval_batch_size)
        _positive("devices", self.devices)
        for f in dataclasses.fields(self):  # every section, a method's added as a field included
            section = getattr(self, f.name)
            if f.name == "schedule":
                section.validate(self.epochs)
            elif dataclasses.is_dataclass(section) and hasattr(section, "validate"):
                section.validate()

    def method_options(self) -> Any:
        """The config section of the run's method (``cfg.difair`` for DIFAIR), built into it by ``build_method``."""
        return getattr(self, options_section(self.method))

    def fidelity(self) -> dict[str, Any]:
        """Every choice where the paper and the authors' code differ (docs/fidelity.md), as set in this run; a
        ``model.*`` option the run's backbone never reads (VGG32's on another backbone) as ``"n/a (BACKBONE)"``."""
        reads = {f"model.{k}" for k in backbone_reads(self.model.backbone)}
        return {
            c.key: f"n/a ({self.model.backbone})"
            if c.option.startswith("model.") and c.option not in reads
            else self.get(c.option)
            for c in FIDELITY
        }

    def get(self, option: str) -> Any:
        """The value of a dotted option, e.g. ``cfg.get("difair.alpha")``."""
        node: Any = self
        for part in option.split("."):
            node = getattr(node, part)
        return node


FOLDER_PREFIX = "folder:"  # data.name of an image folder of your own: folder:PATH


def is_folder(name: str) -> bool:
    """Whether the dataset name ``name`` names an image folder (``folder:PATH``)."""
    return str(name).startswith(FOLDER_PREFIX)


def folder_path(name: str, root: str | None = None) -> Path:
    """The PATH of a ``folder:PATH`` dataset name; a relative PATH is taken under ``root`` (``data.root``, which a
    run records as the working directory it started in) when given, else under the working directory."""
    text = name[len(FOLDER_PREFIX) :].strip() if is_folder(name) else ""
    if not text:
        raise DifairError(
            f"a folder dataset is named folder:PATH, got {name!r}: e.g. --set data.name=folder:/data/pets"
        )
    path = Path(text).expanduser()
    return Path(root).expanduser() / path if root and not path.is_absolute() else path


def _resolve_pretrained_data(cfg: TrainConfig) -> None:
    """Fill ``data.normalization=auto`` and ``data.crop_pct`` from the backbone (its pretrained config when it
    starts from trained weights), so the run's config.yaml records what was used."""
    pretrained = cfg.model.uses_pretrained
    if cfg.data.normalization == "auto":
        cfg.data.normalization = "pretrained" if pretrained else "train"
    if cfg.data.crop_pct is None:
        cfg.data.crop_pct = (
            float(pretrained_data_config(cfg.model.backbone)["crop_pct"]) if pretrained else 1.0
        )


def _range(name: str, value: list[float]) -> tuple[float, float]:
    """``value`` as a (low, high) pair of finite numbers; one ``DifairError`` otherwise."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise DifairError(f"{name} takes two numbers LOW,HIGH, got {value!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise DifairError(f"{name} takes two finite numbers, got {value!r}")
    return lo, hi


def _positive(name: str, value: object, alternative: str = "") -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        alt = f" {alternative}" if alternative else ""
        raise DifairError(f"{name} must be a whole number >= 1{alt}, got {value!r}")


# The engine's fast path (docs/performance.md), ``--fast`` on the command line: execution settings that change
# how a run computes, not what it learns (the same ops and distributions; bf16 rounding; other random streams).
FAST_PATH: tuple[str, ...] = (
    "precision=auto",  # bf16 where the device computes it natively, else fp32 (difair.engine.execution)
    "channels_last=auto",  # a timed probe of both memory formats on CPU (cached per machine); true on CUDA
    "augment.backend=batched",
    "optim.foreach=true",
    "model.dropout_backend=fast",
    "cpu_allocator=retain",  # CPU: freed activation blocks kept for the next step instead of re-faulted
)


# Every option of these sections that takes one of a list of words, and the list (the methods' own options: their
# config classes); docs/configuration.md names each word in the option's row (tests/test_configuration_doc.py).
CHOICES: dict[str, tuple[Any, ...]] = {
    "precision": (AUTO, *PRECISIONS),
    "loss_normalizer": LOSS_NORMALIZERS,
    "cpu_allocator": CPU_ALLOCATORS,
    "data.split_family": SPLIT_FAMILIES,
    "data.tinyimagenet_order": TINYIMAGENET_ORDERS,
    "data.cifar_plus_known": CIFAR_PLUS_KNOWN,
    "data.balance": BALANCE_MODES,
    "data.normalization": NORMALIZATIONS,
    "data.cache": CACHES,
    "model.dropout_kind": DROPOUT_KINDS,
    "model.dropout_backend": DROPOUT_BACKENDS,
    "model.padding": PADDINGS,
    "schedule.name": SCHEDULES,
    "schedule.floor": SCHEDULE_FLOORS,
    "augment.randaugment_ops": RANDAUGMENT_OPS,
    "augment.backend": AUGMENT_BACKENDS,
    "augment.contrast_per": CONTRAST_PER,
    "augment.crop": CROPS,
}


@dataclass(frozen=True)
class FidelityChoice:
    """One paper-vs-code choice of docs/fidelity.md: its ``results.json`` key, its option, the authors' value."""

    key: str  # name under "fidelity" in results.json
    option: str  # dotted config key
    row: int  # row of docs/fidelity.md
    authors: str | None = None  # the authors' TensorFlow code's value (--set text); None: no authors' option


# Every choice of docs/fidelity.md, in the order of results.json's "fidelity" record. ``--authors-code`` sets each
# one with an authors' value; rows without one (same behaviour, or kept on purpose) have ``authors=None``.
FIDELITY: tuple[FidelityChoice, ...] = (
    FidelityChoice("corr_variant", "difair.corr_variant", 1, "reference"),  # (1/N^2) sum per class, summed
    FidelityChoice("loss_normalizer", "loss_normalizer", 2, "nominal"),  # sum / nominal batch 128
    FidelityChoice("decoupled_weight_decay", "optim.decoupled_weight_decay", 8, "true"),  # Keras decay
    FidelityChoice("schedule_floor", "schedule.floor", 9, "reference"),  # Keras cosine floor lr * (lr * 1e-3)
    FidelityChoice("cac_tuplet_includes_target", "cac.tuplet_includes_target", 5, "true"),  # log(2 + ...)
    FidelityChoice("cac_rejection_softmin", "cac.rejection_softmin", 6, "global"),  # softmin over the array
    FidelityChoice("cac_recenter", "cac.recenter", 7),
    FidelityChoice("split_family", "data.split_family", 16),
    FidelityChoice("tinyimagenet_order", "data.tinyimagenet_order", 17, "wnids"),  # wnids.txt line order
    # the 4 vehicles: the paper's and the code's
    FidelityChoice("cifar_plus_known", "data.cifar_plus_known", 18),
    FidelityChoice("balance", "data.balance", 19),
    FidelityChoice("normalization", "data.normalization", 20, "reference"),  # the authors' pasted constants
    FidelityChoice("dropout_kind", "model.dropout_kind", 11),
    FidelityChoice("contrast_per", "augment.contrast_per", 24, "batch"),  # one MNIST factor per batch
    FidelityChoice("padding", "model.padding", 12, "tf"),  # TF 'same' stride-2 padding
    FidelityChoice("bn_momentum", "model.bn_momentum", 13, "0.01"),  # Keras BatchNorm 0.99 / 1e-3
    FidelityChoice("bn_eps", "model.bn_eps", 13, "0.001"),
    FidelityChoice("label_smoothing_form", "ce.label_smoothing_form", 25),  # Vaze's form vs PyTorch's
)

# ``--authors-code``: every choice of FIDELITY set to the authors' TensorFlow code.
AUTHORS_CODE: tuple[str, ...] = tuple(f"{c.option}={c.authors}" for c in FIDELITY if c.authors is not None)


def eval_batch(batch_size: int, images: Any) -> int:
    """The evaluation batch for ``images`` (``[N, C, H, W]``): ``batch_size``, or fewer so that one batch holds at
    most ``EVAL_BATCH_PIXELS`` pixels."""
    h, w = images.shape[-2:]
    return max(1, min(batch_size, EVAL_BATCH_PIXELS // max(1, h * w)))


def eval_chunks(images: Any, batch_size: int) -> Iterator[Any]:
    """``images`` in consecutive evaluation batches of ``eval_batch(batch_size, images)``."""
    step = eval_batch(batch_size, images)
    return (images[i : i + step] for i in range(0, len(images), step))
