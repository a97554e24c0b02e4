"""The CPUs a process may use: its affinity mask, capped by the CPU quota of its cgroup (containers, CI runners).

PyTorch sizes its thread pool from the CPUs it sees (the mask), not from a quota (Docker ``--cpus``, a Kubernetes
CPU limit), which limits CPU *time*: ``cgroup_cpu_limit`` reads that limit, ``usable_cores`` turns mask and quota
into a thread count, ``cpu_capacity`` into the CPU time a peak estimate may count.
"""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")

# A quota's fraction of a CPU at or above this counts as one more thread: on the 2-core Zen 4 a VGG32 step with
# 2 threads beat 1 thread from a quota of ~1.15 CPUs on (1.25: 625 vs 677 ms; 1.0: 798 vs 705; docs/performance.md).
QUOTA_FRACTION = 0.25


def cgroup_cpu_limit(proc_cgroup: Path = PROC_CGROUP, root: Path = CGROUP_ROOT) -> float | None:
    """The CPU time this process's cgroup may use, in CPUs (quota / period), or None without a quota.

    cgroup v2 (``cpu.max``, under ``root`` or ``root/unified``) and v1 (``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``
    under the hierarchy named by its controllers, ``root/cpu`` or ``root/cpu,cpuacct``): the smallest limit on the
    process's cgroup and its ancestors, the way Docker's ``--cpus`` and a Kubernetes CPU limit set it. A path that
    is not mounted is skipped, and so is a cgroup outside this namespace's view (a path with ``..``).
    """
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    limits = []
    for line in lines:
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if controllers == "":  # v2: 0::/path
            mounts = [m for m in (root, root / "unified") if (m / "cgroup.controllers").is_file()]
            read = _cpu_max
        elif "cpu" in controllers.split(","):
            names = dict.fromkeys([controllers, "cpu", "cpu,cpuacct", "cpuacct,cpu"])
            mounts = [root / name for name in names]
            read = _cfs_quota
        else:
            continue
        parts = [p for p in path.strip().split("/") if p]
        if ".." in parts:
            continue
        for mount in mounts:
            for depth in range(len(parts), -1, -1):  # the cgroup itself, then each ancestor up to the mount
                limit = read(mount.joinpath(*parts[:depth]))
                if limit is not None:
                    limits.append(limit)
    return min(limits) if limits else None


def _cpu_max(folder: Path) -> float | None:
    with contextlib.suppress(OSError, ValueError):
        quota, period = ((folder / "cpu.max").read_text().split() + ["", ""])[:2]
        if quota != "max" and float(period) > 0:
            return float(quota) / float(period)
    return None


def _cfs_quota(folder: Path) -> float | None:
    with contextlib.suppress(OSError, ValueError):
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
        if quota > 0 and period > 0:
            return quota / period
    return None


def affinity_cores() -> int:
    """The CPUs in this process's affinity mask (``os.cpu_count()`` where the OS has no masks)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def cores_within_quota(affinity: int, limit: float | None) -> int:
    """The threads that ``affinity`` CPUs under a quota of ``limit`` CPUs (None: none) keep busy: a fraction of at
    least ``QUOTA_FRACTION`` counts as a CPU; at least 1."""
    if limit is None:
        return max(1, affinity)
    whole = math.floor(limit)
    return max(1, min(affinity, whole + (limit - whole >= QUOTA_FRACTION)))


def usable_cores() -> int:
    """The CPUs this process can keep busy: its affinity mask, capped by its cgroup's quota."""
    return cores_within_quota(affinity_cores(), cgroup_cpu_limit())


def cpu_capacity() -> float:
    """The CPU time this process may use, in CPUs: the affinity mask, or the quota where it is smaller."""
    limit = cgroup_cpu_limit()
    affinity = affinity_cores()
    return float(affinity) if limit is None else min(float(affinity), limit)


__all__ = [
    "cgroup_cpu_limit",
    "affinity_cores",
    "cores_within_quota",
    "usable_cores",
    "cpu_capacity",
    "QUOTA_FRACTION",
]
