"""Dataset registry: ``get_dataset(config.data)`` returns an ``OSRData`` for any supported benchmark."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from difair.config import DataConfig
from difair.data.base import OSRData
from difair.errors import DifairError

_LOADERS: dict[str, Callable[[DataConfig], OSRData]] = {}


def register_dataset(name: str) -> Callable[[Callable[[DataConfig], OSRData]], Callable[[DataConfig], OSRData]]:
    def wrap(fn: Callable[[DataConfig], OSRData]) -> Callable[[DataConfig], OSRData]:
        _LOADERS[name] = fn
        return fn

    return wrap


def default_root(cfg: DataConfig | None = None) -> Path:
    """Where datasets are looked for: ``data.root``, else $DIFAIR_DATA, else ~/.cache/difair-data."""
    if cfg is not None and cfg.root:
        return Path(cfg.root).expanduser()
    env = os.environ.get("DIFAIR_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "difair-data"


def available_datasets() -> list[str]:
    return sorted(_LOADERS) + ["folder:PATH"]


@register_dataset("digits")
def _digits(cfg: DataConfig) -> OSRData:
    from difair.data.digits import load_digits_osr

    return load_digits_osr(
        cfg.split,
        image_size=cfg.image_size,
        balance=cfg.balance,
        balance_seed=cfg.balance_seed,
        split_family="vaze",
    )


def get_dataset(cfg: DataConfig) -> OSRData:
    """Load the split that ``cfg`` names; raises ``DifairError`` for an unknown name or a missing dataset."""
    name = cfg.name
    if name.startswith("folder:"):
        name = "folder"
    if name not in _LOADERS:
        raise DifairError(f"unknown dataset {cfg.name!r}: choose one of {', '.join(available_datasets())}")
    return _LOADERS[name](cfg)


def check_dataset_name(name: str) -> None:
    """Raise ``DifairError`` if ``name`` is not a registered dataset."""
    if not (name.startswith("folder:") or name in _LOADERS):
        raise DifairError(f"unknown dataset {name!r}: choose one of {', '.join(available_datasets())}")
