"""Dataset registry: ``get_dataset(config.data)`` returns an ``OSRData`` for any supported benchmark."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from difair.config import DataConfig
from difair.data.base import OSRData
from difair.errors import DifairError

_LOADERS: dict[str, Callable[[DataConfig], OSRData]] = {}


def register_dataset(
    name: str,
) -> Callable[[Callable[[DataConfig], OSRData]], Callable[[DataConfig], OSRData]]:
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
    return sorted(n for n in _LOADERS if n != "folder") + ["folder:PATH"]


@register_dataset("digits")
def _digits(cfg: DataConfig) -> OSRData:
    from difair.data.digits import load_digits_osr

    return load_digits_osr(
        cfg.split,
        image_size=cfg.image_size,
        balance=cfg.balance,
        balance_seed=cfg.balance_seed,
        split_family=cfg.split_family,
        normalization=cfg.normalization,
    )


@register_dataset("mnist")
def _mnist(cfg: DataConfig) -> OSRData:
    from difair.data.mnist import load_mnist

    return load_mnist(cfg)


@register_dataset("svhn")
def _svhn(cfg: DataConfig) -> OSRData:
    from difair.data.svhn import load_svhn

    return load_svhn(cfg)


@register_dataset("cifar10")
def _cifar10(cfg: DataConfig) -> OSRData:
    from difair.data.cifar import load_cifar10

    return load_cifar10(cfg)


@register_dataset("cifar+10")
def _cifar_plus_10(cfg: DataConfig) -> OSRData:
    from difair.data.cifar import load_cifar_plus

    return load_cifar_plus(cfg, 10)


@register_dataset("cifar+50")
def _cifar_plus_50(cfg: DataConfig) -> OSRData:
    from difair.data.cifar import load_cifar_plus

    return load_cifar_plus(cfg, 50)


@register_dataset("tinyimagenet")
def _tinyimagenet(cfg: DataConfig) -> OSRData:
    from difair.data.tinyimagenet import load_tinyimagenet

    return load_tinyimagenet(cfg)


@register_dataset("folder")
def _folder(cfg: DataConfig) -> OSRData:
    from difair.data.folder import load_folder

    return load_folder(cfg)


def get_dataset(cfg: DataConfig) -> OSRData:
    """Load the split that ``cfg`` names; raises ``DifairError`` for an unknown name or a missing dataset."""
    name = cfg.name
    if name.startswith("folder:"):
        name = "folder"
    elif name == "folder":
        name = ""  # a folder dataset must name its PATH
    if name not in _LOADERS:
        raise DifairError(f"unknown dataset {cfg.name!r}: choose one of {', '.join(available_datasets())}")
    data = _LOADERS[name](cfg)
    if cfg.val_fraction > 0:
        from difair.data.validation import hold_out_validation

        data = hold_out_validation(data, cfg.val_fraction, cfg.val_seed)
    return data


def check_dataset_name(name: str) -> None:
    """Raise ``DifairError`` if ``name`` is not a registered dataset."""
    if not (name.startswith("folder:") or (name in _LOADERS and name != "folder")):
        raise DifairError(f"unknown dataset {name!r}: choose one of {', '.join(available_datasets())}")
