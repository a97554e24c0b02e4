"""Helpers shared by the ``difair`` command and its plugins (``difair.bench.commands``, ``difair.viz.commands``):
the config flags, split lists and name checks, each reading the one place that owns the fact.

Building the parser must stay fast (``difair --help`` should not import torch), so the library is imported
inside the helpers that need it (function-level imports marked "start-up time").
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from difair.errors import DifairError

if TYPE_CHECKING:
    from difair.config import TrainConfig

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


def _keep_help() -> str:
    from difair.predict.calibration import KEEP_KNOWN  # start-up time: imports torch

    return f"calibrate to accept this fraction of the known calibration images (default {KEEP_KNOWN})"


KEEP_HELP = LazyHelp(_keep_help)  # --keep of calibrate, export


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


def check_method_name(name: str) -> None:
    """Raise ``DifairError`` naming the registered methods when ``name`` is none of them."""
    from difair.methods import check_method_name as check  # start-up time: imports torch

    check(name)


def parse_methods(text: str | None) -> list[str]:
    """Comma-separated method names (each checked); None: every registered method."""
    from difair.methods import check_method_name, method_names  # start-up time: imports torch

    if text is None:
        return list(method_names())
    names = parse_names(text, "methods")
    for name in names:
        check_method_name(name)
    return names


def parse_names(text: str, what: str) -> list[str]:
    """Comma-separated names without repeats; at least one."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise DifairError(
            f"--{what} needs at least one name, e.g. --{what} {'difair,ce,cac' if what == 'methods' else 'mnist'}"
        )
    return list(dict.fromkeys(items))


def check_dataset_name(name: str) -> None:
    """Raise ``DifairError`` naming the registered datasets when ``name`` is none of them."""
    from difair.data import check_dataset_name as check  # start-up time: imports torch

    check(name)


def finite_float(text: str) -> float:
    """argparse type: a finite number (``nan`` and ``inf`` are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def _whole(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be >= {least}, got {value}")
    return value


def count(text: str) -> int:
    """argparse type: a whole number >= 0."""
    return _whole(text, 0)


def positive(text: str) -> int:
    """argparse type: a whole number >= 1."""
    return _whole(text, 1)


def parse_splits(text: str | None) -> list[int]:
    """``"0-4"``, ``"0,2,3"`` or ``"1"`` -> list of split indices; None: every split (``NUM_SPLITS``)."""
    from difair.data.splits import NUM_SPLITS, check_split  # start-up time: imports torch

    if text is None:
        return list(range(NUM_SPLITS))
    out: list[int] = []
    try:
        for part in text.split(","):
            if "-" in part:
                a, b = part.split("-", 1)
                if int(b) < int(a):
                    raise DifairError(
                        f"split range {part!r} runs backwards: write it as {b.strip()}-{a.strip()}"
                    )
                out.extend(range(int(a), int(b) + 1))
            elif part.strip():
                out.append(int(part))
    except ValueError as exc:
        raise DifairError(f"cannot read splits {text!r}: write e.g. 0-{NUM_SPLITS - 1} or 0,2,3") from exc
    if not out:
        raise DifairError(f"no splits in {text!r}: write e.g. 0-{NUM_SPLITS - 1} or 0,2,3")
    for s in out:
        check_split(s)
    return out


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


def evaluation_process(device: str | None) -> bool:
    """Commands that compute a run's outputs (``set_defaults(evaluates=True)``) keep the blocks the C allocator
    frees, for the rest of their process (``cpu_allocator=retain``, ``engine.allocator``): on the CPU each
    evaluation batch's activations are otherwise fresh pages, and batches ran 2x slower (docs/performance.md).
    Only the command's own process: a library call leaves the caller's allocator alone. True when it was set."""
    # start-up time: the parser imports this module
    from difair.devices import pick_device
    from difair.engine.allocator import apply_cpu_allocator

    try:  # the device the command will compute on: auto is pick_device's rule (CUDA, else the CPU), not Fabric's
        kind = pick_device().type if device in (None, "auto") else torch_device_type(device)
    except (RuntimeError, TypeError):
        return False  # not a device name: the command says so
    return apply_cpu_allocator("retain", kind, warn=False)


def torch_device_type(device: str) -> str:
    """The type of the device ``device`` names (``cuda:1`` -> ``cuda``), here or not."""
    import torch  # start-up time: the parser imports this module

    return torch.device(device).type


def unfinished_note(run_dir: Path) -> str | None:
    """A note when ``run_dir``'s checkpoint holds fewer epochs than its config asks for; None otherwise, or when
    it is no readable run (the command itself then says why)."""
    from difair.engine import rundir as R  # start-up time: the parser imports this module
    from difair.engine.load import checkpoint_record

    try:
        cfg = R.read_run_config(Path(run_dir))
        state = R.load_checkpoint(Path(run_dir) / R.CHECKPOINT)
        ck = checkpoint_record(int(state["epoch"]) + 1, cfg.epochs)
    except (DifairError, OSError, ValueError, KeyError, TypeError):
        return None
    if (
        ck["complete"] or state.get("config_digest") not in cfg.digests()
    ):  # another config: the command refuses
        return None
    if R.lock_held(Path(run_dir)):  # training now: resuming it is not the advice
        return (
            f"{run_dir} is being trained (its checkpoint holds epoch {ck['epoch']} of {ck['epochs']}): what "
            "follows comes from that checkpoint"
        )
    return unfinished_text(run_dir, ck, "what follows comes from that checkpoint")


def unfinished_text(run_dir: Path, ck: dict[str, Any], consequence: str) -> str:
    """The note for a run whose checkpoint record ``ck`` (``load.checkpoint_record``) is not complete."""
    return (
        f"{run_dir} is unfinished (its checkpoint holds epoch {ck['epoch']} of {ck['epochs']}): {consequence}; "
        f"finish it with difair train --resume {run_dir}"
    )


def interrupted_hint(args: argparse.Namespace | None) -> str:
    """What to do after Ctrl-C, for the command that was interrupted (appended to ``difair: interrupted``)."""
    run = getattr(args, "training", None)  # set by difair train once it knows the run folder
    if run is not None:
        # start-up time: the parser imports this module (train loaded this one before it could be interrupted)
        from difair.engine.rundir import CONFIG

        config = Path(run) / CONFIG
        replacing = getattr(args, "replacing", None)  # --overwrite: the old run's config.yaml, by mtime
        if replacing is not None and config.is_file() and config.stat().st_mtime_ns == replacing:
            return f" before the new run's first checkpoint: nothing of it was kept, {run} holds the old run as it was"
        if config.is_file():
            return f"; continue the run with: difair train --resume {run}"
        return " before the run's first checkpoint: nothing was kept"
    again = {
        "benchmark": "run the same difair benchmark command again: finished runs are reused, the interrupted one resumes",
        "demo": "run the same difair demo command again: finished runs are reused",
    }.get(getattr(args, "command", None) or "")
    return f"; {again}" if again else ""
