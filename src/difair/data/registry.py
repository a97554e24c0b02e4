"""Dataset registry: each loader registers itself where it is defined (``@register_dataset("mnist")``);
``get_dataset(config.data)`` returns an ``OSRData`` for any registered benchmark.

The loaders register when ``difair.data`` is imported (its ``__init__`` imports every loader module).
"""

from __future__ import annotations

from collections.abc import Callable

from difair.config import DataConfig
from difair.data.base import OSRData
from difair.data.validation import hold_out_validation
from difair.errors import DifairError

Loader = Callable[[DataConfig], OSRData]

_LOADERS: dict[str, Loader] = {}

FOLDER = "folder"  # registered as "folder"; named on the command line as folder:PATH


def register_dataset(name: str) -> Callable[[Loader], Loader]:
    """Decorator: register ``fn(cfg: DataConfig) -> OSRData`` as the loader of dataset ``name``."""

    def wrap(fn: Loader) -> Loader:
        _LOADERS[name] = fn
        return fn

    return wrap


def available_datasets() -> list[str]:
    """The names a user may give (``folder:PATH`` for an image folder)."""
    return sorted(n for n in _LOADERS if n != FOLDER) + [f"{FOLDER}:PATH"]


def _loader_name(name: str) -> str:
    """The registry key of a dataset name (``folder:PATH`` -> ``folder``); "" when it names none."""
    if name.startswith(f"{FOLDER}:"):
        return FOLDER
    return name if name in _LOADERS and name != FOLDER else ""


def check_dataset_name(name: str) -> None:
    """Raise ``DifairError`` if ``name`` is not a registered dataset."""
    if not _loader_name(name):
        raise DifairError(f"unknown dataset {name!r}: choose one of {', '.join(available_datasets())}")


def get_dataset(cfg: DataConfig) -> OSRData:
    """Load the split that ``cfg`` names; raises ``DifairError`` for an unknown name or a missing dataset."""
    check_dataset_name(cfg.name)
    data = _LOADERS[_loader_name(cfg.name)](cfg)
    if cfg.val_fraction > 0:
        data = hold_out_validation(data, cfg.val_fraction, cfg.val_seed)
    return data
