"""Help texts that read the facts they state, computed only when help is printed (``LazyHelp``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

AUTHORS_HELP = (
    "run as the authors' TensorFlow code did: every option of docs/fidelity.md set to the authors' behaviour "
    "(difair.config.AUTHORS_CODE; --set options win)"
)


class LazyHelp(str):
    """An argparse help text computed only when help is printed (argparse formats help with ``%``)."""

    def __new__(cls, make: Callable[[], str]) -> LazyHelp:
        obj = super().__new__(cls, "...")
        obj._make = make  # type: ignore[attr-defined]
        return obj

    def __mod__(self, params: Any) -> str:
        return self._make() % params  # type: ignore[attr-defined]


def config_default(key: str) -> Any:
    """The default of the config option ``key`` (dotted), read from ``TrainConfig``: its one owner."""
    from difair.config import TrainConfig  # start-up time: imports torch

    value: Any = TrainConfig().to_dict()
    for part in key.split("."):
        value = value[part]
    return value


# --keep of calibrate and export: predict.calibration.KEEP_KNOWN, copied so that their help imports no torch
# (tests/test_predict.py checks the copy)
KEEP_HELP = "calibrate to accept this fraction of the known calibration images (default 0.95)"


def _fast_help() -> str:
    from difair.config import FAST_PATH  # start-up time: imports torch

    return (
        f"the fast path, {' '.join(FAST_PATH)}: precision and channels_last chosen for this device (bf16 only where "
        "it is native); --set options win over it, e.g. --set precision=32-true"
    )


FAST_HELP = LazyHelp(_fast_help)


def _jobs_help() -> str:
    from difair.engine.pool import MAX_WORKERS  # start-up time: imports torch

    return f"runs in parallel (default: one per usable core, at most {MAX_WORKERS})"


JOBS_HELP = LazyHelp(_jobs_help)  # --jobs of demo


def with_default(help_text: str | LazyHelp, key: str) -> LazyHelp:
    """``help_text`` followed by the default of config option ``key`` (what a run gets when the flag is left out)."""

    def make() -> str:
        text = help_text._make() if isinstance(help_text, LazyHelp) else help_text  # type: ignore[attr-defined]
        return f"{text} (default {config_default(key)}, unless --preset or --config sets it)"

    return LazyHelp(make)


def method_help(prefix: str = "") -> LazyHelp:
    """``--method(s)`` help: the registered methods."""

    def make() -> str:
        from difair.methods import method_names  # start-up time: imports torch

        return prefix + ", ".join(method_names())

    return LazyHelp(make)


def dataset_help(prefix: str = "") -> LazyHelp:
    """``--dataset(s)`` help: the registered datasets."""

    def make() -> str:
        from difair.data import available_datasets  # start-up time: imports torch

        return prefix + ", ".join(available_datasets())

    return LazyHelp(make)


def split_help() -> LazyHelp:
    """``--split`` help: the range of split indices."""

    def make() -> str:
        from difair.data.splits import NUM_SPLITS  # start-up time: imports torch

        return f"known/unknown split, 0-{NUM_SPLITS - 1} (0 only: the SSB datasets and folder:PATH, one split each)"

    return LazyHelp(make)


def demo_epochs_help() -> LazyHelp:
    """``demo --epochs`` help: the demo's default."""

    def make() -> str:
        from difair.demo import DEMO_EPOCHS  # start-up time: imports torch (through the config)

        return f"epochs per run (default {DEMO_EPOCHS})"

    return LazyHelp(make)
