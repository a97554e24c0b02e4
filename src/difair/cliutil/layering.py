"""How a command builds a run's config: defaults < --preset < --config < --fast < --authors-code < --set < the
named flags; and the notes and refusals about presets."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from difair.cliutil.argtypes import check_dataset_name, check_method_name
from difair.cliutil.help import AUTHORS_HELP, FAST_HELP
from difair.errors import DifairError

if TYPE_CHECKING:
    from difair.config import TrainConfig


def add_config_flags(p: argparse.ArgumentParser, set_help: str) -> None:
    """``--set KEY=VALUE`` (repeatable), ``--fast`` and ``--authors-code``: read back by ``flag_overrides``."""
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=set_help)
    p.add_argument("--fast", action="store_true", help=FAST_HELP)
    p.add_argument("--authors-code", action="store_true", help=AUTHORS_HELP)


def flag_overrides(fast: bool, authors_code: bool, overrides: list[str]) -> list[str]:
    """The settings of ``--fast`` and ``--authors-code``, then the ``--set`` overrides (so ``--set`` wins)."""
    from difair.config import AUTHORS_CODE, FAST_PATH  # start-up time: imports torch

    return [*(FAST_PATH if fast else ()), *(AUTHORS_CODE if authors_code else ()), *overrides]


def method_dataset_overrides(method: str | None, dataset: str | None) -> list[str]:
    """``--method`` and ``--dataset`` as overrides, each name checked first (in one line when unknown)."""
    overrides = []
    if method is not None:
        check_method_name(method)
        overrides.append(f"method={method}")
    if dataset is not None:
        check_dataset_name(dataset)
        overrides.append(f"data.name={json.dumps(dataset)}")  # quoted: "folder:" is no YAML mapping
    return overrides


def layered_config(base: dict[str, Any], overrides: list[str]) -> TrainConfig:
    """``overrides`` applied over ``base``, resolved, and its dataset's name checked."""
    from difair.config import TrainConfig, apply_overrides  # start-up time: imports torch

    cfg = TrainConfig.from_dict(apply_overrides(base, overrides)).resolve()
    check_dataset_name(cfg.data.name)
    return cfg


def check_preset_flags(preset: str | None, method: str | None, dataset: str | None) -> None:
    """Refuse ``--method`` or a benchmark ``--dataset`` that contradict ``--preset``: the run would take another
    method's or dataset's protocol (its lr, augmentation) without a word. A folder dataset may take any preset."""
    from difair.config import is_folder  # start-up time: imports torch
    from difair.presets import preset_dict, preset_for

    if preset is None:
        return
    given = preset_dict(preset)
    own_method, own_dataset = given.get("method"), (given.get("data") or {}).get("name")
    if method is not None and own_method is not None and method != own_method:
        other = preset_for(method, dataset or own_dataset)
        raise DifairError(
            f"--preset {preset} holds {own_method}'s protocol (its lr, loss options); --method {method} would train "
            f"with it: use {f'--preset {other}' if other else 'no preset'} instead"
        )
    if dataset is not None and own_dataset is not None and dataset != own_dataset and not is_folder(dataset):
        other = preset_for(own_method or method or "difair", dataset)
        if other is not None:
            raise DifairError(
                f"--preset {preset} holds the protocol of {own_dataset}; {dataset} has its own: use --preset {other}"
            )


def preset_note(method: str, dataset: str) -> str | None:
    """A note for a run of a benchmark dataset without ``--preset``: difair's defaults are not that dataset's
    protocol (MNIST: no RandAugment and no flips); None for datasets without a preset of their own."""
    from difair.config import is_folder  # start-up time: imports torch
    from difair.data.ssb import IMAGENET_SSB
    from difair.presets import preset_for

    name = None if is_folder(dataset) else preset_for(method, dataset)
    if name is None and dataset == IMAGENET_SSB:
        return (
            f"{dataset} has no preset: Vaze et al.'s protocol scores every test image (--set data.balance=none) "
            "and trains as docs/ssb.md says"
        )
    if name is None:
        return None
    return (
        f"without --preset this run takes difair's defaults, not the paper's protocol for {dataset}: "
        f"difair train --preset {name} (what difair benchmark runs)"
    )


def base_config(preset: str | None, config: Path | None) -> dict[str, Any]:
    """The defaults, under ``--preset`` NAME, under ``--config`` FILE: the layers below ``--fast`` and ``--set``."""
    from difair.config import TrainConfig  # start-up time: imports torch
    from difair.presets import merge, preset_dict, read_config_file

    base = TrainConfig().to_dict()
    if preset is not None:
        base = merge(base, preset_dict(preset))
    if config is not None:
        base = merge(base, read_config_file(config))
    return base
