"""What a command says around its work: the allocator of evaluating commands, the unfinished-run note, the hint
after an interruption."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from difair.errors import DifairError


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
    if R.lock_held(Path(run_dir)):  # trained or evaluated now: resuming it is not the advice
        return (
            f"{run_dir} is in use by another process (its checkpoint holds epoch {ck['epoch']} of {ck['epochs']}): "
            "what follows comes from that checkpoint"
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
