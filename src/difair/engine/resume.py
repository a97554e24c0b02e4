"""Resuming a run: the config a session trains, what a checkpoint holds, and restoring from it (with the checks
that a resume continues the same run on the same data, and the warnings where it cannot end exactly as an
uninterrupted run would)."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import torch

from difair.config import TrainConfig
from difair.data.base import OSRData
from difair.engine import rundir as R
from difair.engine.load import check_classes, check_state
from difair.engine.loop import TrainLoop
from difair.engine.schedule import EpochSchedule
from difair.errors import DifairError
from difair.version import __version__


def config_for_run(cfg: TrainConfig | None, run_dir: Path, resume: bool) -> TrainConfig:
    """The config a session trains: the run folder's when resuming (``cfg``, if given, must train alike), else
    ``cfg`` resolved."""
    if resume:
        saved = R.read_run_config(run_dir)
        diff = saved.difference(cfg.resolve()) if cfg is not None else None
        if diff:
            raise DifairError(
                f"the options differ from the run saved in {run_dir} ({diff}): resume without changing them"
            )
        if cfg is not None:
            saved.logging = cfg.logging  # an execution choice (not in the digest): the caller's
        return saved
    if cfg is None:
        raise DifairError("fit needs a config unless it resumes a run")
    return cfg.resolve()


def checkpoint_state(
    loop: TrainLoop, schedule: EpochSchedule, epoch: int, data: OSRData, train_time: float
) -> dict[str, Any]:
    """What a checkpoint holds after ``epoch``: every tensor and state a resume needs, and what the run is checked
    against and predicts at."""
    cfg = loop.cfg
    return {
        "model": loop.model.state_dict(),
        "optimizer": loop.optimizer.state_dict(),
        "schedule": schedule.state_dict(),
        "rng": R.rng_state(),
        "epoch": epoch,  # the index (from 0) of the last epoch trained; metrics.jsonl counts from 1
        "train_time_s": train_time,  # over every session of the run, so a resumed run reports the total
        "config": cfg.to_dict(),
        "config_digest": cfg.digest(),
        "num_classes": data.num_classes,
        "channels": data.channels,
        "image_size": data.image_size,  # the input side the model was trained at (predict resizes to it)
        "mean": loop.model.mean.flatten().tolist(),  # what the model normalises with (data.normalization)
        "std": loop.model.std.flatten().tolist(),
        "class_names": data.class_names,
        "difair_version": __version__,
        # the intra-op threads of this session on CPU (None elsewhere): a resume with another count rounds otherwise
        "cpu_threads": torch.get_num_threads() if loop.fabric.device.type == "cpu" else None,
    }


def restore_checkpoint(
    run_dir: Path,
    cfg: TrainConfig,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: EpochSchedule,
    resume: bool,
    zero: bool,
    class_names: list[str],
    device_type: str = "cpu",
) -> tuple[int, float]:
    """Load the last checkpoint into model, optimizer, schedule and RNGs when resuming; the first epoch to train
    (from 0) and the training time of the sessions before. Refuses data whose known classes changed since."""
    ckpt_path = run_dir / R.CHECKPOINT
    if resume and ckpt_path.is_file():
        state = R.load_checkpoint(ckpt_path)
        if state.get("config_digest") not in cfg.digests():
            raise DifairError(
                f"checkpoint {ckpt_path} belongs to another configuration than {run_dir / R.CONFIG}: restore "
                "that file, or retrain with --overwrite"
            )
        check_state(state, ckpt_path, cfg.epochs)
        check_classes(run_dir, state.get("class_names") or [], class_names)
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            schedule.load_state_dict(state["schedule"])
            R.set_rng_state(state["rng"])
        except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as exc:
            raise DifairError(
                f"checkpoint {ckpt_path} is damaged or does not fit its config ({type(exc).__name__}): restore "
                "it, or retrain the run with --overwrite"
            ) from exc
        done = int(state["epoch"]) + 1
        if zero and device_type == "cpu":  # the thread count rounds CPU sums only
            _warn_other_threads(run_dir, state.get("cpu_threads"), done)
        if zero:  # the next checkpoint is written beside this one before it replaces it
            R.check_space(run_dir, ckpt_path.stat().st_size, f"resuming {run_dir} (its next checkpoint)")
            R.truncate_metrics(run_dir, done)
        return done, _prior_train_time(state, run_dir, done)
    if resume and zero:
        if R.read_metrics(run_dir):
            warnings.warn(
                f"{run_dir} holds no checkpoint ({R.CHECKPOINT}) of the epochs its metrics log: the run starts again "
                "from epoch 1",
                stacklevel=2,
            )
        R.truncate_metrics(run_dir, 0)
    return 0, 0.0


def _warn_other_threads(run_dir: Path, before: Any, done: int) -> None:
    """Warn when a CPU run resumes with another intra-op thread count than its checkpoint was trained with: the
    sums of its convolutions then round in another order, so it cannot end exactly where an uninterrupted run would."""
    now = torch.get_num_threads()
    if isinstance(before, int) and before != now:
        warnings.warn(
            f"{run_dir} trained its first {done} epochs with {before} CPU threads and resumes with {now}: its result "
            "will differ in the last digits from an uninterrupted run's; to compute as before: "
            f"OMP_NUM_THREADS={before} difair train --resume {run_dir}",
            stacklevel=2,
        )


def _prior_train_time(state: dict[str, Any], run_dir: Path, done: int) -> float:
    """The training time a checkpoint holds; for checkpoints of difair <= 0.1.0 (which did not keep it) the sum of
    the epoch times logged for its ``done`` epochs."""
    t = state.get("train_time_s")
    if isinstance(t, (int, float)) and math.isfinite(t) and t >= 0:
        return float(t)
    rows = R.read_metrics(run_dir)[:done]
    return float(sum(r["epoch_time_s"] for r in rows if isinstance(r.get("epoch_time_s"), (int, float))))
