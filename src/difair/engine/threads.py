"""``cpu_threads``: how many intra-op threads a run's process computes with.

PyTorch sizes its thread pool from the CPUs it sees (by default one thread per physical core of the affinity
mask). A container's CPU quota (Docker ``--cpus``, a Kubernetes CPU limit, a CI runner's cgroup) is not in that
mask: a 2-CPU pod on a 64-core host gets 32-64 threads that share 2 CPUs' worth of time, and threads that spin at
each barrier while the quota has run out make that a slowdown (on the 2-core Zen 4 under a 1-CPU quota, a VGG32
training step took 798 ms with PyTorch's 2 threads and 705 ms with 1: docs/performance.md).

``auto`` takes PyTorch's count as this process started with it (``PYTORCH_THREADS``, read when this module is
imported, before difair sets any) and lowers it to the CPUs the process can keep busy (``cpus.usable_cores``),
shared among the processes that train side by side: a run's ``devices`` times a pool's workers. An
``OMP_NUM_THREADS`` in the environment is the user's (or a launcher's) choice, and the count it gave is kept. A
number sets the count. Process-wide, like ``torch.set_num_threads``; an execution choice, not in the config digest.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch

from difair.config import AUTO, TrainConfig
from difair.cpus import affinity_cores, cgroup_cpu_limit, cores_within_quota

# PyTorch's intra-op threads when difair's engine was imported: its default, or what the user set before
PYTORCH_THREADS = torch.get_num_threads()


def auto_threads(
    baseline: int,
    usable: int,
    processes: int = 1,
    env: Mapping[str, str] | None = None,
    current: int | None = None,
) -> tuple[int, str]:
    """The count ``cpu_threads=auto`` gives a process that PyTorch started with ``baseline`` threads, that may use
    ``usable`` CPUs among ``processes`` side by side, and why. With ``OMP_NUM_THREADS`` set, the process's
    ``current`` count (default: ``baseline``) is kept."""
    env = os.environ if env is None else env
    if env.get("OMP_NUM_THREADS", "").strip():
        kept = baseline if current is None else current
        return kept, f"{kept}: OMP_NUM_THREADS={env['OMP_NUM_THREADS'].strip()} in the environment, kept"
    share = max(1, usable // max(1, processes))
    where = f"{usable} usable CPUs" + (f" / {processes} processes" if processes > 1 else "")
    if baseline <= share:
        return baseline, f"{baseline}: PyTorch's count, within {where}"
    return share, f"{share}: PyTorch's {baseline} lowered to {where}"


def resolve_cpu_threads(
    cfg: TrainConfig, processes: int = 1, limit: float | None = None, affinity: int | None = None
) -> tuple[int, str]:
    """The count ``cfg.cpu_threads`` gives each of ``processes`` processes, and the reason ``cfg.auto`` records
    ("" for an explicit count). ``limit`` / ``affinity``: the cgroup quota and mask, read when None."""
    if cfg.cpu_threads != AUTO:
        return int(cfg.cpu_threads), ""
    limit = cgroup_cpu_limit() if limit is None else limit
    usable = cores_within_quota(affinity_cores() if affinity is None else affinity, limit)
    n, why = auto_threads(PYTORCH_THREADS, usable, processes, current=torch.get_num_threads())
    if limit is not None:
        why += f" (cgroup CPU quota {limit:g})"
    return n, f"auto -> {why}"


def apply_cpu_threads(cfg: TrainConfig, processes: int = 1) -> int:
    """Set this process's intra-op threads for ``cfg.cpu_threads`` and return the count; ``auto``'s reason goes
    to ``cfg.auto.cpu_threads``.

    For a run on several devices (``cfg.devices > 1``) without ``OMP_NUM_THREADS``, the count is also put in the
    environment, for the ranks Lightning's launcher starts: it would otherwise give each ``cores // devices``.
    """
    n, cfg.auto.cpu_threads = resolve_cpu_threads(cfg, processes)
    if n != torch.get_num_threads():
        torch.set_num_threads(n)
    if cfg.devices > 1 and "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(n)
    return n


__all__ = ["PYTORCH_THREADS", "auto_threads", "resolve_cpu_threads", "apply_cpu_threads"]
