"""Run many configs, each into its own folder, in parallel worker processes with one progress bar.

Small models leave CPU cores idle within one process; several single-threaded runs side by side use them.
Each run stays independent and seeded, so a job's result does not depend on which worker ran it.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import queue as queue_mod
import signal
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from difair.config import TrainConfig
from difair.cpus import usable_cores
from difair.engine.build import load_data
from difair.engine.progress import make_progress
from difair.engine.runner import run_or_resume
from difair.engine.threads import apply_cpu_threads
from difair.errors import Terminated


@dataclass
class Job:
    """One run: its config, its folder and a label for the progress bar."""

    config: TrainConfig
    run_dir: Path
    label: str = ""


MAX_WORKERS = 4  # CPU-bound runs: more processes than this share the memory bandwidth rather than add speed


def default_workers() -> int:
    """One worker per usable CPU (affinity and cgroup quota: ``cpus.usable_cores``), at most ``MAX_WORKERS``."""
    return max(1, min(MAX_WORKERS, usable_cores()))


_stopping = False  # in a worker process: set by SIGTERM from the parent, so no queued job starts after it


def _on_sigterm(signum: int, frame: object) -> None:
    global _stopping
    _stopping = True
    raise KeyboardInterrupt  # the running job cleans up as after Ctrl-C and keeps its last checkpoint


def _worker_init() -> None:
    """A worker stops on SIGTERM as on Ctrl-C, and runs no job queued after it."""
    signal.signal(signal.SIGTERM, _on_sigterm)


def _run_job(
    config_dict: dict[str, Any], run_dir: str, workers: int, ticks: Any
) -> tuple[dict[str, Any], str]:
    if _stopping:  # the executor hands a worker the jobs queued for it even after a shutdown
        raise KeyboardInterrupt
    cfg = TrainConfig.from_dict(config_dict)
    resolved = cfg.resolve()
    apply_cpu_threads(resolved, workers=workers)  # the worker's share, already while its data loads
    data = load_data(resolved, None, workers=workers)

    def tick(row: dict[str, Any]) -> None:
        if ticks is not None:
            ticks.put((run_dir, row.get("train_loss", float("nan"))))

    # cpu_threads=auto gives each worker its share of the usable CPUs (engine.threads)
    return run_or_resume(cfg, run_dir, data=data, show_progress=False, on_epoch=tick, cpu_processes=workers)


def run_jobs(
    jobs: list[Job],
    *,
    workers: int | None = None,
    show_progress: bool = True,
    description: str = "runs",
    console: Console | None = None,
) -> list[tuple[dict[str, Any], str]]:
    """Results and what was done (``reused``/``resumed``/``trained``) for each job, in the jobs' order."""
    workers = max(1, min(workers or default_workers(), len(jobs) or 1))
    total = sum(j.config.epochs for j in jobs)
    progress = make_progress(console or Console(stderr=True)) if show_progress else None
    ctx = mp.get_context("spawn")  # no fork after torch has started its thread pools
    manager = ctx.Manager() if show_progress else None
    ticks = manager.Queue() if manager is not None else None
    results: dict[int, tuple[dict[str, Any], str]] = {}
    try:
        if progress is not None:
            progress.start()
            task = progress.add_task(description, total=total, info="")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init) as pool:
            futures: dict[Future, int] = {
                pool.submit(_run_job, j.config.to_dict(), str(j.run_dir), workers, ticks): i
                for i, j in enumerate(jobs)
            }
            pending = set(futures)
            try:
                while pending:
                    done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                    _drain(ticks, progress, task if progress is not None else None)
                    for fut in done:
                        i = futures[fut]
                        results[i] = fut.result()
                        if progress is not None and results[i][1] == "reused":
                            progress.update(task, advance=jobs[i].config.epochs)
            except Terminated:  # SIGTERM reaches this process alone (Ctrl-C reaches the workers too)
                _interrupt_workers(pool)
                raise
            _drain(ticks, progress, task if progress is not None else None)
    finally:
        if progress is not None:
            progress.stop()
        if manager is not None:
            manager.shutdown()
    return [results[i] for i in range(len(jobs))]


def _interrupt_workers(pool: ProcessPoolExecutor) -> None:
    """Cancel the jobs not started and stop the running ones as Ctrl-C would (each cleans up and keeps its last
    checkpoint; ``_worker_init``), so that leaving the pool does not first run every queued job."""
    workers = list(
        (getattr(pool, "_processes", None) or {}).values()
    )  # the executor's own; shutdown drops them
    pool.shutdown(wait=False, cancel_futures=True)
    for process in workers:
        with contextlib.suppress(ProcessLookupError, OSError):
            os.kill(process.pid, signal.SIGTERM)


def _drain(ticks: Any, progress: Any, task: Any) -> None:
    if ticks is None or progress is None:
        return
    while True:
        try:
            run_dir, loss = ticks.get_nowait()
        except queue_mod.Empty:
            return
        progress.update(task, advance=1, info=f"{Path(run_dir).name} loss {loss:.3f}")
