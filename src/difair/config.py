"""Typed run configuration: dataclasses, validated once at the edge, saved with every run.

``TrainConfig.from_dict`` builds a config from nested dicts (a preset file, a saved run), ``apply_overrides``
applies ``key=value`` strings with dotted keys (``optim.lr=0.1``), ``resolve`` fills derived values (radius,
warmup) and ``validate`` raises one ``DifairError`` per problem, naming the fix.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any

import yaml

from difair.errors import DifairError


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
    cifar_plus_known: str = (
        "split"  # split (per-split lists, Vaze) | vehicles ([0,1,8,9], the DIFAIR authors)
    )
    balance: str = "without_replacement"  # without_replacement | with_replacement | none
    balance_seed: int = 0
    val_fraction: float = (
        0.0  # known training images held out for calibration (0: the paper, whole train set)
    )
    val_seed: int = 0
    normalization: str = (
        "train"  # train (statistics of the split's training images) | reference (authors' constants)
    )
    known: list[str] | None = None  # folder:PATH datasets: known class names (or indices as strings)
    download: bool = False


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


@dataclass
class DifairConfig:
    features_per_class: int = 5
    alpha: float = 10.0
    radius: float | None = None  # None: radius_ratio * sqrt(2*N*alpha^2)
    radius_ratio: float = 0.6
    inner_weight: float = 0.1
    loss_mode: str = "smooth"  # smooth | hard
    corr_weight: float = 1.0  # lambda
    corr_variant: str = "paper"  # paper | reference
    head_kernel_size: int = 3


@dataclass
class CACConfig:
    alpha: float = 10.0
    lambda_: float = 0.1
    tuplet_includes_target: bool = False  # True: the authors' code (log(2 + ...))
    rejection_softmin: str = "sample"  # sample (CAC) | global (the authors' code)
    recenter: bool = True  # replace anchors by class means of correct training logits before evaluation


@dataclass
class CEConfig:
    label_smoothing: float = 0.0


@dataclass
class OptimConfig:
    lr: float = 0.3
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    decoupled_weight_decay: bool = False  # True: the authors' Keras decay w <- w - lr*wd*w on all parameters
    foreach: bool = True


@dataclass
class ScheduleConfig:
    name: str = "cosine_restarts_warmup"  # cosine_restarts_warmup | cosine_warmup | constant
    warmup_epochs: int | None = None  # None: 10 epochs per 600 (at least 1)
    restarts: int = 2
    min_lr_ratio: float = 1e-3
    floor: str = "vaze"  # vaze: min lr = lr*ratio | reference: the authors' Keras floor lr*(lr*ratio)


@dataclass
class AugmentConfig:
    randaugment_n: int = 1
    randaugment_m: int = 6
    randaugment_ops: str = "all"  # all | no_geometric (SVHN in the authors' code)
    crop_padding: int = 4
    hflip: bool = True
    backend: str = "torchvision"  # torchvision (per-image reference ops) | batched (difair.data.randaugment)
    contrast: float = (
        0.0  # Keras RandomContrast: x' = (x - mean) * f + mean, f ~ U[1-c, 1+c] (authors' MNIST: 0.5)
    )
    contrast_per: str = (
        "sample"  # sample (one factor per image) | batch (the authors' Keras layer: one per batch)
    )
    brightness: float = 0.0  # Keras RandomBrightness: x' = x + U[-b, b] * 255 per image (authors' MNIST: 0.5)


PRECISIONS = ("32-true", "bf16-mixed", "16-mixed", "bf16-true")  # what Lightning Fabric runs
AUTO = "auto"  # precision / channels_last chosen per device by difair.engine.execution


@dataclass
class AutoRecord:
    """How the engine resolved options the user left at ``auto`` (empty: the user chose the value).

    Filled by ``difair.engine.execution`` when a run starts; the resolved values are in ``precision`` and
    ``channels_last`` themselves, so a resumed run computes exactly as it started.
    """

    precision: str = ""
    channels_last: str = ""


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
    eval_batch_size: int = 512
    seed: int = 0
    precision: str = "32-true"  # auto | 32-true | bf16-mixed | 16-mixed | bf16-true
    accelerator: str = "auto"  # auto | cpu | cuda | mps
    devices: int = 1
    channels_last: bool | str = False  # true | false | auto (a timed probe on CPU, true on CUDA)
    compile: bool = False  # torch.compile the model (an execution choice: not part of the digest)
    loss_normalizer: str = "batch"  # batch (mean) | nominal (sum / batch_size, the authors' code)
    auto: AutoRecord = field(default_factory=AutoRecord)  # filled by the engine: how "auto" was resolved

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return _build(cls, data, "")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_yaml(cls, text: str) -> TrainConfig:
        data = yaml.safe_load(text) or {}
        if not isinstance(data, dict):
            raise DifairError("a config file must hold a mapping of options: see docs/configuration.md")
        return cls.from_dict(data)

    def digest(self) -> str:
        """Hash of everything that determines what is trained (device choices excluded).

        Options resolved from ``auto`` enter as ``auto`` (what was asked), so a request and the run it made
        have the same digest on every machine.
        """
        d = self.to_dict()
        for key in ("accelerator", "devices", "eval_batch_size", "compile"):
            d.pop(key, None)
        auto = d.pop("auto")
        for key in ("precision", "channels_last"):
            if auto[key]:
                d[key] = AUTO
        d["data"].pop("root", None)
        d["data"].pop("download", None)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    # ------------------------------------------------------------------ derived values
    def resolve(self) -> TrainConfig:
        """A copy with derived values filled in (radius, warmup epochs); validated."""
        cfg = TrainConfig.from_dict(self.to_dict())
        cfg.validate()
        if cfg.difair.radius is None:
            n, a = cfg.difair.features_per_class, cfg.difair.alpha
            cfg.difair.radius = round(cfg.difair.radius_ratio * math.sqrt(2 * n * a * a), 6)
        if cfg.schedule.warmup_epochs is None:
            cfg.schedule.warmup_epochs = max(1, round(cfg.epochs * 10 / 600)) if cfg.epochs > 1 else 0
        cfg.validate()
        return cfg

    def validate(self) -> None:
        from difair.methods import METHODS

        _choice("method", self.method, tuple(METHODS))
        _choice("precision", self.precision, (AUTO, *PRECISIONS))
        if self.channels_last not in (True, False, AUTO):
            raise DifairError(f"channels_last takes true, false or auto, got {self.channels_last!r}")
        _choice("loss_normalizer", self.loss_normalizer, ("batch", "nominal"))
        _positive("epochs", self.epochs)
        _positive("batch_size", self.batch_size)
        _positive("eval_batch_size", self.eval_batch_size)
        _positive("devices", self.devices)
        d = self.difair
        if d.features_per_class < 1:
            raise DifairError(
                f"difair.features_per_class (N) must be >= 1, got {d.features_per_class}: set it to 1 or more"
            )
        if not d.alpha > 0:
            raise DifairError(f"difair.alpha must be > 0, got {d.alpha}: the paper uses 10")
        if d.radius is not None and not d.radius > 0:
            raise DifairError(
                f"difair.radius must be > 0, got {d.radius}: leave it unset for 0.6*sqrt(2*N*alpha^2)"
            )
        if not d.radius_ratio > 0:
            raise DifairError(f"difair.radius_ratio must be > 0, got {d.radius_ratio}: the paper uses 0.6")
        _choice("difair.loss_mode", d.loss_mode, ("smooth", "hard"))
        _choice("difair.corr_variant", d.corr_variant, ("paper", "reference"))
        if d.corr_weight < 0 or d.inner_weight < 0:
            raise DifairError("difair.corr_weight and difair.inner_weight must be >= 0")
        if not self.cac.alpha > 0:
            raise DifairError(f"cac.alpha must be > 0, got {self.cac.alpha}: CAC uses 10")
        _choice("cac.rejection_softmin", self.cac.rejection_softmin, ("sample", "global"))
        if not 0 <= self.ce.label_smoothing < 1:
            raise DifairError("ce.label_smoothing must be in [0, 1)")
        if not self.optim.lr > 0:
            raise DifairError(f"optim.lr must be > 0, got {self.optim.lr}")
        if self.optim.weight_decay < 0 or not 0 <= self.optim.momentum < 1:
            raise DifairError("optim.weight_decay must be >= 0 and optim.momentum in [0, 1)")
        _choice("schedule.name", self.schedule.name, ("cosine_restarts_warmup", "cosine_warmup", "constant"))
        _choice("schedule.floor", self.schedule.floor, ("vaze", "reference"))
        if self.schedule.restarts < 0 or (self.schedule.warmup_epochs or 0) < 0:
            raise DifairError("schedule.restarts and schedule.warmup_epochs must be >= 0")
        if self.schedule.warmup_epochs is not None and self.schedule.warmup_epochs >= self.epochs > 1:
            raise DifairError(
                f"schedule.warmup_epochs ({self.schedule.warmup_epochs}) must be < epochs ({self.epochs})"
            )
        _choice("model.dropout_kind", self.model.dropout_kind, ("element", "channel"))
        _choice("model.dropout_backend", self.model.dropout_backend, ("torch", "fast"))
        _choice("model.padding", self.model.padding, ("symmetric", "tf"))
        if not 0 <= self.model.dropout < 1 or not self.model.width > 0:
            raise DifairError("model.dropout must be in [0, 1) and model.width > 0")
        a = self.augment
        if a.randaugment_n < 0 or not 0 <= a.randaugment_m <= 30 or a.crop_padding < 0:
            raise DifairError("augment: randaugment_n >= 0, randaugment_m in [0, 30], crop_padding >= 0")
        _choice("augment.randaugment_ops", a.randaugment_ops, ("all", "no_geometric"))
        _choice("augment.backend", a.backend, ("torchvision", "batched"))
        _choice("augment.contrast_per", a.contrast_per, ("sample", "batch"))
        if not (0 <= a.contrast <= 1 and 0 <= a.brightness <= 1):
            raise DifairError(
                f"augment.contrast and augment.brightness must be in [0, 1], got {a.contrast} and {a.brightness}"
            )
        _choice("data.split_family", self.data.split_family, ("vaze", "neal"))
        _choice("data.tinyimagenet_order", self.data.tinyimagenet_order, ("sorted", "wnids"))
        _choice("data.cifar_plus_known", self.data.cifar_plus_known, ("split", "vehicles"))
        _choice("data.balance", self.data.balance, ("without_replacement", "with_replacement", "none"))
        _choice("data.normalization", self.data.normalization, ("train", "reference"))
        if not 0 <= self.data.val_fraction < 1:
            raise DifairError(f"data.val_fraction must be in [0, 1), got {self.data.val_fraction}")
        if self.data.split < 0:
            raise DifairError(f"data.split must be >= 0, got {self.data.split}")

    def fidelity(self) -> dict[str, Any]:
        """Every choice where the paper and the authors' code differ (docs/fidelity.md), as set in this run."""
        return {
            "corr_variant": self.difair.corr_variant,
            "loss_normalizer": self.loss_normalizer,
            "decoupled_weight_decay": self.optim.decoupled_weight_decay,
            "schedule_floor": self.schedule.floor,
            "cac_tuplet_includes_target": self.cac.tuplet_includes_target,
            "cac_rejection_softmin": self.cac.rejection_softmin,
            "cac_recenter": self.cac.recenter,
            "split_family": self.data.split_family,
            "tinyimagenet_order": self.data.tinyimagenet_order,
            "cifar_plus_known": self.data.cifar_plus_known,
            "balance": self.data.balance,
            "normalization": self.data.normalization,
            "dropout_kind": self.model.dropout_kind,
            "contrast_per": self.augment.contrast_per,
            "padding": self.model.padding,
            "bn_momentum": self.model.bn_momentum,
            "bn_eps": self.model.bn_eps,
        }


def _choice(name: str, value: Any, options: tuple[str, ...]) -> None:
    if value not in options:
        raise DifairError(f"unknown {name} {value!r}: choose one of {', '.join(options)}")


def _positive(name: str, value: int) -> None:
    if not isinstance(value, int) or value < 1:
        raise DifairError(f"{name} must be a whole number >= 1, got {value!r}")


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return (args[0] if len(args) == 1 else tp), True
    return tp, False


def _coerce(value: Any, tp: Any, path: str) -> Any:
    base, optional = _unwrap_optional(tp)
    if value is None:
        if optional:
            return None
        raise DifairError(f"option {path} cannot be empty")
    if dataclasses.is_dataclass(base):
        if not isinstance(value, dict):
            raise DifairError(f"option {path} is a group of options; set its fields as {path}.<name>=<value>")
        return _build(base, value, path + ".")
    if base is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise DifairError(f"option {path} takes true or false, got {value!r}")
    if base is int:
        if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        ):
            raise DifairError(f"option {path} takes a whole number, got {value!r}")
        return int(value)
    if base is float:
        if isinstance(value, str):  # YAML 1.1 reads "5e-4" (no dot) as a string
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise DifairError(f"option {path} takes a number, got {value!r}")
        return float(value)
    if base is str:
        return str(value)
    if typing.get_origin(base) is list:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise DifairError(
                f"option {path} takes a list (comma-separated on the command line), got {value!r}"
            )
        return [str(v) for v in value]
    return value


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise DifairError(
            f"unknown option {prefix}{unknown[0]}: valid options here are {', '.join(prefix + n for n in sorted(names))}"
        )
    kwargs = {k: _coerce(v, hints[k], prefix + k) for k, v in data.items()}
    return cls(**kwargs)


# The engine's fast path (docs/performance.md), ``--fast`` on the command line: execution settings that change
# how a run computes, not what it learns (the same ops and distributions; bf16 rounding; other random streams).
FAST_PATH: tuple[str, ...] = (
    "precision=auto",  # bf16 where the device computes it natively, else fp32 (difair.engine.execution)
    "channels_last=auto",  # a timed probe of both memory formats on CPU (cached per machine); true on CUDA
    "augment.backend=batched",
    "optim.foreach=true",
    "model.dropout_backend=fast",
)


# Every option of docs/fidelity.md set to the authors' TensorFlow code (``--authors-code``): the row numbers of
# that page are in the comments. Rows without an authors' option (same behaviour, or kept on purpose) are absent.
AUTHORS_CODE: tuple[str, ...] = (
    "difair.corr_variant=reference",  # 1: (1/N^2) sum per class, summed over classes
    "loss_normalizer=nominal",  # 2: sum / nominal batch 128
    "cac.tuplet_includes_target=true",  # 5: log(2 + ...)
    "cac.rejection_softmin=global",  # 6: softmin over the whole array
    "optim.decoupled_weight_decay=true",  # 8: Keras decoupled decay on every variable
    "schedule.floor=reference",  # 9: Keras cosine floor lr * (lr * 1e-3)
    "model.padding=tf",  # 12: TF 'same' stride-2 padding
    "model.bn_momentum=0.01",  # 13: Keras BatchNorm 0.99 / 1e-3
    "model.bn_eps=0.001",
    "data.tinyimagenet_order=wnids",  # 17: wnids.txt line order
    "data.cifar_plus_known=vehicles",  # 18: the 4 vehicles as known classes
    "data.normalization=reference",  # 20: the authors' pasted constants
    "augment.contrast_per=batch",  # 24: one MNIST contrast factor per batch
)


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key=value`` strings (dotted keys, YAML values) to a nested config dict; returns a new dict."""
    out = json.loads(json.dumps(data))
    for item in overrides:
        if "=" not in item:
            raise DifairError(f"--set takes key=value, got {item!r}: e.g. --set optim.lr=0.1")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else None
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise DifairError(f"unknown option {key!r}: {part} is not a group of options")
        node[parts[-1]] = value
    return out
