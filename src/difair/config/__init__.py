"""Typed run configuration: dataclasses, validated once at the edge, saved with every run.

``TrainConfig.from_dict`` builds a config from nested dicts (a preset file, a saved run), ``apply_overrides``
applies ``key=value`` strings with dotted keys (``optim.lr=0.1``), ``resolve`` fills derived values (radius,
warmup) and ``validate`` raises one ``DifairError`` per problem, naming the fix.

The package's modules: ``data`` (the data section, dataset names), ``sections`` (model, optim, schedule, augment,
logging), ``digest`` (what the config digest hashes), ``fidelity`` (``FIDELITY``, ``AUTHORS_CODE``,
``FAST_PATH``), ``train`` (``TrainConfig``, ``CHOICES``); every name is importable from ``difair.config``.
"""

from difair.config.data import (
    BALANCE_MODES,
    CACHES,
    CIFAR_PLUS_KNOWN,
    FOLDER_PREFIX,
    MAX_IMAGE_SIZE,
    MEMORY_BUDGET_FRACTION,
    MIN_IMAGE_SIZE,
    NORMALIZATIONS,
    SPLIT_FAMILIES,
    TINYIMAGENET_ORDERS,
    DataConfig,
    folder_path,
    is_folder,
)
from difair.config.digest import DATASET_OPTIONS, DIGEST_NEUTRAL, EXECUTION_OPTIONS
from difair.config.fidelity import AUTHORS_CODE, FAST_PATH, FIDELITY, FidelityChoice
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
from difair.config.train import CHOICES, TrainConfig
from difair.options import apply_overrides

__all__ = [
    "AUGMENT_BACKENDS",
    "AUTHORS_CODE",
    "AUTO",
    "BALANCE_MODES",
    "CACHES",
    "CHOICES",
    "CIFAR_PLUS_KNOWN",
    "CONTRAST_PER",
    "CPU_ALLOCATORS",
    "CROPS",
    "DATASET_OPTIONS",
    "DIGEST_NEUTRAL",
    "EXECUTION_OPTIONS",
    "FAST_PATH",
    "FIDELITY",
    "FOLDER_PREFIX",
    "LOSS_NORMALIZERS",
    "MAX_IMAGE_SIZE",
    "MEMORY_BUDGET_FRACTION",
    "MIN_IMAGE_SIZE",
    "NORMALIZATIONS",
    "PRECISIONS",
    "RANDAUGMENT_OPS",
    "SCHEDULES",
    "SCHEDULE_FLOORS",
    "SPLIT_FAMILIES",
    "TINYIMAGENET_ORDERS",
    "AugmentConfig",
    "AutoRecord",
    "DataConfig",
    "FidelityChoice",
    "LoggingConfig",
    "ModelConfig",
    "OptimConfig",
    "ScheduleConfig",
    "TrainConfig",
    "apply_overrides",
    "folder_path",
    "is_folder",
]
