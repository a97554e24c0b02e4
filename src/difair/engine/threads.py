"""``cpu_threads``: how many intra-op threads a run's process computes with.

PyTorch sizes its thread pool from the CPUs it sees (by default one thread per physical core of the affinity
mask). A container's CPU quota (Docker ``--cpus``, a Kubernetes CPU limit, a CI runner's cgroup) is not in that
mask: a 2-CPU pod on a 64-core host gets 32-64 threads that share 2 CPUs' worth of time, and threads that spin at
each barrier while the quota has run out make that a slowdown (on the 2-core Zen 4 under a 1-CPU quota, a VGG32
training step took 798 ms with PyTorch's 2 threads and 705 ms with 1: docs/performance.md).

``auto`` takes PyTorch's count as it was when difair's engine was imported (``PYTORCH_THREADS``: its default, or
what the process set before) and lowers it to the CPUs the process can keep busy (``difair.cpus``), shared among
the processes that train side by side: the run's ``devices`` and the workers of a pool (``engine.pool``). An
``OMP_NUM_THREADS`` in the environment is the user's (or a launcher's) per-process choice and is kept, divided
among a pool's workers. A number sets the count. Process-wide, like ``torch.set_num_threads``; an execution
choice, not in the config digest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator, Mapping

import torch

from difair.config import AUTO, DataConfig, TrainConfig
from difair.cpus import affinity_cores, cgroup_cpu_limit, cores_within_quota
from difair.data.stream import default_workers

# PyTorch's intra-op threads when difair's engine was imported: its default, or what the process set before
PYTORCH_THREADS = torch.get_num_threads()
OMP_ENV = "OMP_NUM_THREADS"


def omp_num_threads(env: Mapping[str, str] | None = None) -> str | None:
    """The ``OMP_NUM_THREADS`` of ``env`` (default: this process's), or None where it is unset or empty."""
    value = (os.environ if env is None else env).get(OMP_ENV, "").strip()
    return value or None


def _cpus(cpus: tuple[int, float | None] | None) -> tuple[int, float | None]:
    """``cpus`` (affinity cores, cgroup quota) as given, or read from this process and its cgroup when None."""
    return (affinity_cores(), cgroup_cpu_limit()) if cpus is None else cpus


def cpu_share(usable: int, devices: int = 1, workers: int = 1) -> int:
    """The CPUs each process keeps busy when ``devices`` processes of a run, run by each of ``workers`` pool
    workers, share ``usable`` CPUs (at least 1)."""
    return max(1, usable // max(1, devices * workers))


def process_cpus(cfg: TrainConfig, workers: int = 1, cpus: tuple[int, float | None] | None = None) -> int:
    """This process's share of the usable CPUs (affinity mask under the cgroup quota; ``cpus``: those two, read
    when None) for a run of ``cfg.devices`` processes, one of ``workers`` pool workers side by side."""
    affinity, limit = _cpus(cpus)
    return cpu_share(cores_within_quota(affinity, limit), cfg.devices, workers)


def process_data(
    cfg: TrainConfig, workers: int = 1, cpus: tuple[int, float | None] | None = None
) -> DataConfig:
    """``cfg.data`` as this process loads it: ``data.workers=null`` (a stream's decoding processes) sized from
    the process's CPU share, so processes side by side do not each start a decoder per CPU. ``cfg`` is left as
    it is (the count belongs to the machine, like the threads; not in the digest)."""
    if cfg.data.workers is not None:
        return cfg.data
    return dataclasses.replace(cfg.data, workers=default_workers(process_cpus(cfg, workers, cpus)))


def auto_threads(
    baseline: int,
    usable: int,
    devices: int = 1,
    workers: int = 1,
    env: Mapping[str, str] | None = None,
) -> tuple[int, str]:
    """The count ``cpu_threads=auto`` gives each of a run's ``devices`` processes, run by one of ``workers`` pool
    workers side by side, when PyTorch started with ``baseline`` threads on ``usable`` CPUs; and why. With
    ``OMP_NUM_THREADS`` set, ``baseline`` (the count PyTorch took from it) is kept, divided among the workers.
    A function of its arguments alone, so applying it again gives the same count."""
    omp = omp_num_threads(env)
    pool = f" / {workers} workers" if workers > 1 else ""
    if omp is not None:
        kept = max(1, baseline // workers)
        return kept, f"{kept}: OMP_NUM_THREADS={omp} in the environment{pool}, kept"
    share = cpu_share(usable, devices, workers)
    where = f"{usable} usable CPUs" + (f" / {devices} processes" if devices > 1 else "") + pool
    if baseline <= share:
        return baseline, f"{baseline}: PyTorch's count, within {where}"
    return share, f"{share}: PyTorch's {baseline} lowered to {where}"


def resolve_cpu_threads(
    cfg: TrainConfig, workers: int = 1, cpus: tuple[int, float | None] | None = None
) -> tuple[int, str]:
    """The count ``cfg.cpu_threads`` gives each process of the run, and the reason ``cfg.auto`` records ("" for
    an explicit count). ``workers``: pool workers side by side; ``cpus``: the affinity mask and cgroup quota (read
    when None)."""
    if cfg.cpu_threads != AUTO:
        return int(cfg.cpu_threads), ""
    affinity, limit = _cpus(cpus)
    usable = cores_within_quota(affinity, limit)
    n, why = auto_threads(PYTORCH_THREADS, usable, cfg.devices, workers)
    if limit is not None:
        why += f" (cgroup CPU quota {limit:g})"
    return n, f"auto -> {why}"


def apply_cpu_threads(cfg: TrainConfig, workers: int = 1) -> int:
    """Set this process's intra-op threads for ``cfg.cpu_threads`` and return the count; ``auto``'s reason goes
    to ``cfg.auto.cpu_threads``."""
    n, cfg.auto.cpu_threads = resolve_cpu_threads(cfg, workers)
    if n != torch.get_num_threads():
        torch.set_num_threads(n)
    return n


@contextlib.contextmanager
def num_threads(n: int) -> Iterator[int]:
    """This process's intra-op threads set to ``n`` inside the block, restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def ranks_inherit(n: int) -> Iterator[None]:
    """``OMP_NUM_THREADS=n`` inside the block unless the environment sets it, removed after: the ranks Lightning
    Fabric's launcher starts then compute with ``n`` threads each (without it the launcher gives every process
    ``cores // processes``, over a quota or an explicit ``cpu_threads``)."""
    if OMP_ENV in os.environ:
        yield
        return
    os.environ[OMP_ENV] = str(n)
    try:
        yield
    finally:
        os.environ.pop(OMP_ENV, None)


__all__ = [
    "PYTORCH_THREADS",
    "omp_num_threads",
    "cpu_share",
    "process_cpus",
    "process_data",
    "auto_threads",
    "resolve_cpu_threads",
    "apply_cpu_threads",
    "num_threads",
    "ranks_inherit",
]
