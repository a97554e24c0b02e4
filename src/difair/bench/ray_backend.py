"""Run a benchmark grid on a Ray cluster: one run per Ray task, each with its share of a GPU.

``run_grid_ray(jobs)`` runs plain callables (the same per-run function the sequential runner calls, bound to
its arguments, e.g. ``functools.partial(grid.run_one, spec, run_dir, epochs=...)``) as Ray tasks and returns
their results in order. ``run_benchmark_ray`` is ``difair benchmark --ray``: the sequential runner's grid with
its manifest, ``timing.json`` and tables, where every run is a task. Without an address a local Ray is
started; with one (``ray://host:10001`` or ``auto``) the cluster's. Run folders are written by the tasks, so
on a cluster ``--out`` must be a filesystem every node sees. Needs ``pip install 'difair[ray]'``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from difair.errors import DifairError


def _ray():
    try:
        import ray
    except ImportError as exc:
        raise DifairError("--ray needs Ray: pip install 'difair[ray]'") from exc
    return ray


def init_ray(address: str | None = None, num_cpus: int | None = None) -> Any:
    """Connect to ``address`` or start a local Ray (``num_cpus`` caps it); reuse a connection already made."""
    ray = _ray()
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"address": address, "include_dashboard": False, "log_to_driver": False}
        if address is None and num_cpus is not None:
            kwargs["num_cpus"] = num_cpus
        try:
            ray.init(**kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise DifairError(f"cannot connect to Ray at {address or 'a new local instance'}: {exc}") from exc
    return ray


def _call(job: Callable[[], Any], threads: int) -> tuple[Any, float]:
    """Inside a Ray task: one intra-op thread per CPU of the task (reproducible numbers), then the job."""
    import torch

    torch.set_num_threads(max(1, threads))
    t0 = time.perf_counter()
    return job(), time.perf_counter() - t0


def run_grid_ray(
    jobs: Sequence[Callable[[], Any]],
    address: str | None = None,
    gpus_per_run: float | None = None,
    cpus_per_run: float = 1,
    *,
    num_cpus: int | None = None,
    names: Sequence[str] | None = None,
    on_done: Callable[[int, Any, float], None] | None = None,
) -> list[Any]:
    """Run each job as a Ray task; their return values in job order.

    ``gpus_per_run``: the GPU share of each task (0.5 puts two runs on a GPU); ``None``: 1 when the cluster
    has GPUs, else 0. ``on_done(i, result, seconds)`` is called as tasks finish, in finishing order.
    """
    ray = init_ray(address, num_cpus)
    if gpus_per_run is None:
        gpus_per_run = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
    remote = ray.remote(num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=0)(_call)
    threads = max(1, int(cpus_per_run))
    refs = [remote.remote(job, threads) for job in jobs]
    index = {ref: i for i, ref in enumerate(refs)}
    results: list[Any] = [None] * len(refs)
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        i = index[done[0]]
        try:
            value, seconds = ray.get(done[0])
        except ray.exceptions.RayTaskError as exc:
            for ref in pending:
                ray.cancel(ref)
            name = names[i] if names else f"job {i}"
            cause = exc.cause if getattr(exc, "cause", None) is not None else exc
            raise DifairError(f"{name} failed on Ray: {type(cause).__name__}: {cause}") from exc
        results[i] = value
        if on_done is not None:
            on_done(i, value, seconds)
    return results


def run_benchmark_ray(
    out: str | Path,
    specs: list[Any],
    *,
    epochs: int | None = None,
    overrides: list[str] | None = None,
    address: str | None = None,
    gpus_per_run: float | None = None,
    cpus_per_run: float = 1,
    num_cpus: int | None = None,
    console: Any = None,
) -> list[dict[str, Any]]:
    """``difair benchmark --ray``: every cell of ``specs`` as a Ray task, then the same tables as ``run_grid``."""
    from rich.console import Console

    # start-up time: the parser imports this module (add_ray_arguments); ray is optional
    from difair.bench import runner
    from difair.bench.grid import run_config, run_one, write_manifest
    from difair.bench.report import write_tables
    from difair.engine import rundir as R

    out = Path(out).resolve()  # tasks may run in another working directory
    overrides = list(overrides or [])
    for spec in specs:  # validate every cell before starting any
        run_config(spec, epochs, overrides)
    out.mkdir(parents=True, exist_ok=True)
    write_manifest(out, specs, epochs, overrides)
    console = console or Console(stderr=True)
    jobs = [
        functools.partial(run_one, spec, out / R.RUNS / spec.name, epochs=epochs, overrides=overrides)
        for spec in specs
    ]

    def done(i: int, value: tuple[dict[str, Any], str], seconds: float) -> None:
        results, how = value
        runner._record_timing(out, specs[i], how, seconds, results)
        console.print(
            f"{specs[i].name}: {how} in {seconds:.0f} s on Ray; {results['score']}: acc "
            f"{100 * results['closed_set_accuracy']:.2f} AUROC {100 * results['auroc']:.2f}",
            markup=False,
            highlight=False,
        )

    t0 = time.perf_counter()
    run_grid_ray(jobs, address, gpus_per_run, cpus_per_run, num_cpus=num_cpus,
                 names=[s.name for s in specs], on_done=done)  # fmt: skip
    rows = write_tables(out)
    console.print(
        f"benchmark: {len(specs)} runs in {time.perf_counter() - t0:.0f} s on Ray; tables in {out}",
        markup=False,
    )
    return rows


def add_ray_arguments(parser: Any) -> None:
    """The ``--ray [ADDRESS]``, ``--gpus-per-run`` and ``--cpus-per-run`` options of ``difair benchmark``."""
    parser.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="one Ray task per run: on the cluster at ADDRESS, or a local Ray without one (pip install 'difair[ray]')",
    )
    parser.add_argument(
        "--gpus-per-run",
        type=float,
        default=None,
        help="with --ray: GPU share of a run (default 1 if any GPU)",
    )
    parser.add_argument("--cpus-per-run", type=float, default=1, help="with --ray: CPUs of a run (default 1)")
