"""``cpu_threads``: how many intra-op threads a run's process computes with.

PyTorch starts one OpenMP thread per CPU of the process's affinity mask. A container's CPU quota (Docker
``--cpus``, a Kubernetes CPU limit, a CI runner's cgroup) is not in that mask: a 2-CPU pod on a 64-core host gets
64 threads that share 2 CPUs' worth of time, and threads that spin at each barrier while the quota has run out
make that a slowdown (on the 2-core Zen 4 under a 1-CPU quota, a VGG32 training step took 798 ms with PyTorch's
2 threads and 705 ms with 1: docs/performance.md). ``auto`` keeps PyTorch's count where it fits and lowers it to
the CPUs the process can keep busy (``hardware.usable_cores``), shared among the processes of one run
(``devices``); an ``OMP_NUM_THREADS`` in the environment is the user's choice and is kept. A number sets the
count. Process-wide, like ``torch.set_num_threads``; an execution choice, not part of the config digest.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch

from difair.config import AUTO, TrainConfig
from difair.engine.hardware import cgroup_cpu_limit, usable_cores


def auto_threads(
    current: int, usable: int, processes: int = 1, env: Mapping[str, str] | None = None
) -> tuple[int, str]:
    """The thread count ``cpu_threads=auto`` gives a process that has ``current`` and may use ``usable`` CPUs
    among ``processes`` of one run, and why."""
    env = os.environ if env is None else env
    if env.get("OMP_NUM_THREADS", "").strip():
        return (
            current,
            f"{current}: OMP_NUM_THREADS={env['OMP_NUM_THREADS'].strip()} in the environment, kept",
        )
    share = max(1, usable // max(1, processes))
    where = f"{usable} usable CPUs" + (f" / {processes} processes" if processes > 1 else "")
    if current <= share:
        return current, f"{current}: PyTorch's count, within {where}"
    return share, f"{share}: PyTorch's {current} lowered to {where}"


def apply_cpu_threads(cfg: TrainConfig, processes: int = 1) -> int:
    """Set this process's intra-op threads for ``cfg.cpu_threads`` and return the count; ``auto``'s reason goes
    to ``cfg.auto.cpu_threads``."""
    if cfg.cpu_threads == AUTO:
        limit = cgroup_cpu_limit()
        n, why = auto_threads(torch.get_num_threads(), usable_cores(limit=limit), processes)
        if limit is not None:
            why += f" (cgroup CPU quota {limit:g})"
        cfg.auto.cpu_threads = f"auto -> {why}"
    else:
        n = int(cfg.cpu_threads)
        cfg.auto.cpu_threads = ""
    if n != torch.get_num_threads():
        torch.set_num_threads(n)
    return n


__all__ = ["auto_threads", "apply_cpu_threads"]
