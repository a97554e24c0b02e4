"""Training: ``fit(config, run_dir)`` trains one run, checkpoints every epoch and writes ``results.json``.

Each epoch's randomness (shuffling, augmentation, dropout) is seeded from ``(seed, epoch)``, so a run resumed
from its last checkpoint ends exactly where an uninterrupted run would (on CPU, same seed). The step and epoch
themselves live in ``difair.engine.loop``; with ``devices > 1`` the run is data-parallel (``difair.engine.ddp``).
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from difair.config import TrainConfig
from difair.data.base import OSRData
from difair.data.folder import resolve_cache
from difair.data.splits import check_split_family
from difair.engine import ddp, staging
from difair.engine import rundir as R
from difair.engine.build import build_model, load_data, make_fabric, make_optimizer, memory_format
from difair.engine.evaluate import evaluate_run, keep_posthoc
from difair.engine.execution import resolve_channels_last, resolve_precision
from difair.engine.hardware import warn_if_slow_bf16
from difair.engine.loop import (  # epoch_seed, run_epoch, train_one_epoch: re-exported (fit's API)
    TrainLoop,
    check_finite,
    epoch_seed,
    epoch_validation_accuracy,
    run_epoch,
    setup_loop,
    train_one_epoch,
)
from difair.engine.progress import EpochProgress
from difair.engine.resume import checkpoint_state, config_for_run, restore_checkpoint
from difair.engine.schedule import EpochSchedule
from difair.engine.tensorboard import TensorBoardLog, tensorboard_enabled
from difair.engine.threads import apply_cpu_threads, ranks_inherit
from difair.errors import DifairError

EpochCallback = Callable[[dict[str, Any]], None]


def fit(
    cfg: TrainConfig | None,
    run_dir: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    data: OSRData | None = None,
    show_progress: bool = True,
    on_epoch: EpochCallback | None = None,
    devices: int | None = None,
    cpu_processes: int = 1,
) -> dict[str, Any]:
    """Train ``cfg`` into ``run_dir`` (or continue the run there with ``resume``) and return its results, the
    record written to ``RUN/results.json`` (metrics of every score, fidelity, checkpoint, environment).

    ``cfg``: a ``TrainConfig`` (None with ``resume``: the run folder's); ``overwrite``: replace a run folder there
    (only once the new run has its first checkpoint); ``data``: an ``OSRData`` to train on instead of loading
    ``cfg.data`` (evaluating or loading the run later needs the same ``data=``); ``show_progress``: a progress bar;
    ``on_epoch``: called with each epoch's metrics row.

    With ``devices > 1`` Fabric starts the other processes by re-running the current command line (a script or
    the ``difair`` CLI, not an interactive session); only rank 0 writes ``run_dir``. ``devices`` overrides the
    config's (also when resuming: it is not part of what is trained, see ``TrainConfig.digest``).
    ``cpu_processes``: how many such trainings share the CPUs (a pool's workers): ``cpu_threads=auto`` gives each
    its share.
    """
    if cfg is not None and not isinstance(cfg, TrainConfig):
        raise DifairError(
            f"fit takes a TrainConfig, got {type(cfg).__name__}: TrainConfig.from_dict(...) builds one from a dict"
        )
    run_dir = Path(run_dir)
    if resume:  # before the lock, which would create a folder that is not there
        staging.check_run_dir(run_dir, resume=True, overwrite=False)
    created = _first_missing(run_dir)  # the folder this call creates (run_dir or an ancestor), if any
    locked = False  # a process refused the lock must not remove the folder: it is the holder's
    try:
        # only rank 0 locks (and writes); Fabric's processes for ranks 1.. carry their rank in the environment
        with R.run_lock(run_dir) if ddp.is_rank_zero() else contextlib.nullcontext():
            locked = True
            if (
                ddp.is_rank_zero()
            ):  # what a write or a start killed midway left; the lock says no writer is active
                staging.remove_stale_stages(run_dir)
                if resume:
                    R.remove_stale_temps(run_dir)
            return _fit_locked(
                cfg, run_dir, resume, overwrite, data, show_progress, on_epoch, devices, cpu_processes
            )
    except BaseException:
        if locked and created is not None:  # a failed start leaves no folder
            _remove_created(run_dir, created)
        raise


def _remove_created(run_dir: Path, created: Path) -> None:
    """Remove the run folder this call created when nothing was written to it, then its parents up to ``created``
    while they are empty: a sibling run another process started meanwhile in a new parent is left alone."""
    if run_dir.is_dir() and not _any_file(run_dir):
        shutil.rmtree(run_dir, ignore_errors=True)
    for folder in (run_dir, *run_dir.parents):
        if folder != created and created not in folder.parents:
            break
        try:
            folder.rmdir()  # only an empty folder: another run's is not
        except FileNotFoundError:
            continue  # the run folder, removed above
        except OSError:
            break


def _first_missing(path: Path) -> Path | None:
    """The topmost folder of ``path`` that does not exist yet (None when ``path`` exists)."""
    missing = None
    for p in (path, *path.parents):
        if p.exists():
            break
        missing = p
    return missing


def _any_file(folder: Path) -> bool:
    """Whether ``folder`` holds a file anywhere below it, other than a run lock."""
    return any(p.is_file() and p.name != R.LOCK for p in folder.rglob("*"))


def _fit_locked(
    cfg: TrainConfig | None,
    run_dir: Path,
    resume: bool,
    overwrite: bool,
    data: OSRData | None,
    show_progress: bool,
    on_epoch: EpochCallback | None,
    devices: int | None,
    cpu_processes: int,
) -> dict[str, Any]:
    """``fit`` while holding the run folder's lock."""
    cfg, fabric, data = _start(cfg, run_dir, resume, overwrite, data, devices, cpu_processes)
    zero = fabric.global_rank == 0
    # a new run is written beside run_dir and swapped in at its first checkpoint (difair.engine.staging)
    with (
        staging.staged_run(run_dir)
        if zero and not resume
        else contextlib.nullcontext(staging.InPlace(run_dir)) as folder
    ):
        if zero and not resume:
            R.atomic_write_text(folder.path / R.CONFIG, cfg.to_yaml())
        torch.manual_seed(cfg.seed)
        restoring = resume and (run_dir / R.CHECKPOINT).is_file()  # the checkpoint holds every tensor
        model, method = build_model(
            cfg, data.num_classes, data.channels, data.mean, data.std, load_weights=not restoring
        )
        model = model.to(memory_format=memory_format(cfg))
        optimizer = make_optimizer(cfg, model)
        schedule = EpochSchedule(optimizer, cfg.optim.lr, cfg.epochs, cfg.schedule)
        start_epoch, prior_time = restore_checkpoint(
            run_dir, cfg, model, optimizer, schedule, resume, zero, data.class_names, fabric.device.type
        )
        loop = setup_loop(cfg, fabric, model, method, optimizer, data.train_images, data.train_labels)
        with TensorBoardLog(
            folder, zero and tensorboard_enabled(cfg), start_epoch if resume else None
        ) as log:  # opened after the staged folder is swapped in: see difair.engine.tensorboard
            train_time = _train_epochs(
                loop, schedule, data, folder, start_epoch, prior_time, show_progress, on_epoch, log
            )
            return _finish(loop, data, folder.path, train_time, log)


def _start(
    cfg: TrainConfig | None,
    run_dir: Path,
    resume: bool,
    overwrite: bool,
    data: OSRData | None,
    devices: int | None,
    cpu_processes: int = 1,
) -> tuple[TrainConfig, Any, OSRData]:
    """The run's resolved config, Fabric and data, and the run folder checked; nothing is written yet."""
    cfg = config_for_run(cfg, run_dir, resume)  # a resumed folder was checked by fit, before its lock
    if not resume:
        cfg.check_new_run()
        check_split_family(cfg.data)
    tensorboard_enabled(cfg)  # logging.tensorboard=true without the package: refused before anything is done
    if devices is not None:
        cfg.devices = devices
        cfg.validate()
    cfg = resolve_precision(cfg)  # precision=auto: by the device's rule, before Fabric is made with it
    fabric = make_fabric(cfg)
    zero = fabric.global_rank == 0  # known before launch: Fabric's child processes carry their rank
    if zero:
        warn_if_slow_bf16(fabric.device.type, cfg.precision)
    if zero and not resume:
        staging.check_run_dir(run_dir, resume=False, overwrite=overwrite)  # refuse early; touch nothing
    if data is None:
        cfg = resolve_cache(cfg)  # data.cache=auto: memory or stream, once per run (recorded in cfg.auto)
    data = load_data(cfg, data, workers=cpu_processes)
    threads = apply_cpu_threads(cfg, workers=cpu_processes)  # before the probe times steps with them
    cfg = resolve_channels_last(cfg, tuple(data.train_images.shape[1:]), data.num_classes, fabric.device.type)
    if fabric.world_size > 1:
        with ranks_inherit(threads):  # the other ranks compute with the same count
            fabric.launch()
    return cfg, fabric, data


def _train_epochs(
    loop: TrainLoop,
    schedule: EpochSchedule,
    data: OSRData,
    folder: staging.StagedRun | staging.InPlace,
    start_epoch: int,
    prior_time: float,
    show_progress: bool,
    on_epoch: EpochCallback | None,
    log: TensorBoardLog,
) -> float:
    """Train the remaining epochs, each checked for divergence, logged and checkpointed (the first checkpoint
    commits a staged new run in place of the old folder); the training time of the whole run (``prior_time``, that
    of the sessions before, included)."""
    cfg, zero = loop.cfg, loop.rank == 0
    t_start, elapsed = time.perf_counter(), prior_time
    with EpochProgress(
        cfg.epochs, start_epoch, f"{cfg.method} {cfg.data.name}#{cfg.data.split}", show_progress and zero
    ) as bar:
        for epoch in range(start_epoch, cfg.epochs):
            schedule.set_epoch(epoch)  # the one place that sets the learning rate
            row = run_epoch(loop, epoch)
            check_finite(row, epoch, folder.path / R.CHECKPOINT)
            if zero and data.has_validation:
                row["val_accuracy"] = epoch_validation_accuracy(loop, data)
            elapsed = prior_time + time.perf_counter() - t_start
            if zero:
                R.append_metrics(folder.path, row)
                R.save_checkpoint(
                    folder.path / R.CHECKPOINT, checkpoint_state(loop, schedule, epoch, data, elapsed)
                )
                folder.commit()
                log.epoch(row)  # after the commit: into the run folder, never into a staged one
            bar.advance(row)
            if on_epoch is not None and zero:
                on_epoch(row)
    return elapsed  # up to the last checkpoint, so that resuming a finished run reports the same total


def _finish(
    loop: TrainLoop, data: OSRData, run_dir: Path, train_time: float, log: TensorBoardLog
) -> dict[str, Any]:
    """Evaluate the trained model and write ``results.json`` and its TensorBoard log (on rank 0 when
    distributed)."""
    if loop.world_size == 1:
        scores: dict[str, torch.Tensor] = {}
        results = evaluate_run(loop.cfg, loop.model, loop.method, data, loop.fabric.device, scores_out=scores)
        results["train_time_s"] = round(train_time, 2)
        keep_posthoc(results, run_dir)
        R.write_json(run_dir / R.RESULTS, results)
        log.results(results, scores, data.test_labels, loop.method.name)
        return results
    return _finish_distributed(loop, data, run_dir, train_time, log)


def _finish_distributed(
    loop: TrainLoop, data: OSRData, run_dir: Path, train_time: float, log: TensorBoardLog
) -> dict[str, Any]:
    """Check the ranks are in sync, evaluate on rank 0 alone, write and broadcast the results."""
    fabric, cfg = loop.fabric, loop.cfg
    digests = ddp.gather_digests(loop.model)
    results: dict[str, Any] | None = None
    if fabric.global_rank == 0:
        # the raw model: no collective calls while the other ranks wait
        scores: dict[str, torch.Tensor] = {}
        results = evaluate_run(cfg, loop.model, loop.method, data, fabric.device, scores_out=scores)
        results["train_time_s"] = round(train_time, 2)
        results["distributed"] = {
            "world_size": fabric.world_size,
            "per_rank_batch_size": cfg.batch_size // fabric.world_size,
            "param_digests": digests,
            "in_sync": len(set(digests)) == 1,
        }
        keep_posthoc(results, run_dir)
        R.write_json(run_dir / R.RESULTS, results)
        log.results(results, scores, data.test_labels, cfg.method)
    results = fabric.broadcast(results, src=0)
    assert results is not None
    return results


__all__ = ["fit", "make_fabric", "load_data", "epoch_seed", "run_epoch", "train_one_epoch", "EpochCallback"]
