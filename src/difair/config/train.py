"""``TrainConfig``: the whole run configuration, its digest and its derived values."""

from __future__ import annotations

import dataclasses
from dataclasses import field
from pathlib import Path
from typing import Any

import yaml

from difair.config.checks import check_positive
from difair.config.data import (
    BALANCE_MODES,
    CACHES,
    CIFAR_PLUS_KNOWN,
    NORMALIZATIONS,
    SPLIT_FAMILIES,
    TINYIMAGENET_ORDERS,
    DataConfig,
    folder_path,
    is_folder,
)
from difair.config.digest import DATASET_OPTIONS, DIGEST_NEUTRAL, EXECUTION_OPTIONS, config_hash, flatten
from difair.config.fidelity import FIDELITY
from difair.config.sections import (
    AUGMENT_BACKENDS,
    AUTO,
    CONTRAST_PER,
    CPU_ALLOCATORS,
    CROPS,
    LOSS_NORMALIZERS,
    PRECISIONS,
    RANDAUGMENT_OPS,
    SCHEDULE_FLOORS,
    SCHEDULES,
    AugmentConfig,
    AutoRecord,
    LoggingConfig,
    ModelConfig,
    OptimConfig,
    ScheduleConfig,
)
from difair.errors import DifairError, check_choice
from difair.methods import CACConfig, CEConfig, DifairConfig, check_method_name, options_section
from difair.nn.backbones import backbone_reads, pretrained_data_config
from difair.nn.dropout import DROPOUT_BACKENDS, DROPOUT_KINDS
from difair.nn.vgg32 import PADDINGS
from difair.options import build_dataclass, load_yaml


@dataclasses.dataclass
class TrainConfig:
    """One run's whole configuration: the method, its sections and the run's own options, written to
    ``RUN/config.yaml`` and hashed into the config digest (every option: docs/configuration.md).

    Build one with ``TrainConfig(...)``, ``TrainConfig.from_dict`` (a preset, a saved run) or
    ``apply_overrides``; ``resolve()`` returns a validated copy with the derived values filled in, which is what
    ``difair.engine.fit`` trains.
    """

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
        return config_hash(self.identity())

    def digests(self) -> set[str]:
        """``digest`` and the digests a checkpoint of this config may hold from earlier versions: those that hashed
        a ``DATASET_OPTIONS`` option at its own value for every dataset (an old ``--authors-code`` run's
        ``cifar_plus_known: vehicles`` on MNIST). What a checkpoint's ``config_digest`` is checked against."""
        return {self.digest(), config_hash(self.identity(per_dataset=False))}

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
        mine, theirs = flatten(self.identity()), flatten(other.identity())
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
        """Raise one ``DifairError`` per problem, naming the fix: each option's type (as ``from_dict`` checks a
        file's), the run's own options, then each section."""
        # a config built in Python is checked as the run would take it ("0.1" for a number: its float)
        type(self).from_dict(self.to_dict())._check()

    def _check(self) -> None:
        check_method_name(self.method)
        check_choice("precision", self.precision, (AUTO, *PRECISIONS))
        if self.channels_last not in (True, False, AUTO):
            raise DifairError(f"channels_last takes true, false or auto, got {self.channels_last!r}")
        check_choice("loss_normalizer", self.loss_normalizer, LOSS_NORMALIZERS)
        check_choice("cpu_allocator", self.cpu_allocator, CPU_ALLOCATORS)
        if self.cpu_threads != AUTO:
            check_positive("cpu_threads", self.cpu_threads, "or auto")
        check_positive("epochs", self.epochs)
        check_positive("batch_size", self.batch_size)
        check_positive("eval_batch_size", self.eval_batch_size)
        check_positive("devices", self.devices)
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
