"""What a run would compute with on this machine, and why: the facts ``difair hardware`` prints.

Every value comes from the rule a run applies when it starts (``hardware``, ``cpus``, ``execution``, ``threads``,
``allocator``), so the report cannot disagree with what ``difair train`` then does. Nothing process-wide is left
changed: the thread rule is evaluated, and set only while the memory-format probe times steps with it.
"""

from __future__ import annotations

from typing import Any

import torch

from difair.config import AUTO, TrainConfig
from difair.cpus import affinity_cores, cgroup_cpu_limit, cores_within_quota
from difair.engine import hardware as H
from difair.engine.allocator import allocator_choice, glibc
from difair.engine.execution import (
    cached_memory_format,
    probe_memory_format,
    resolve_channels_last,
    resolve_precision,
)
from difair.engine.threads import num_threads, resolve_cpu_threads
from difair.errors import DifairError

Workload = tuple[tuple[int, int, int], int]  # one training image's (C, H, W), the number of known classes


def machine_report(
    cfg: TrainConfig, workload: Workload | None = None, *, probe: bool = False
) -> dict[str, Any]:
    """The machine, and each execution choice of ``cfg`` on it: requested, resolved and why.

    ``workload`` is what the channels_last probe times; without it the memory format is reported as decided at
    the run's start. ``probe``: time it now (and cache the verdict, as a run would) when none is cached yet.
    """
    cfg = TrainConfig.from_dict(cfg.to_dict())  # resolved on a copy
    dev = H.device_info(cfg.accelerator)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DifairError(
            "accelerator=cuda, but PyTorch sees no CUDA device here: set accelerator=auto or cpu"
        )
    limit, affinity = cgroup_cpu_limit(), affinity_cores()
    flags = H.cpu_flags()
    vector = H.vector_isa(flags, H.cpu_vendor_family())
    report: dict[str, Any] = {
        "cpu": H.cpu_model(),
        "vector_isa": vector[0] if vector else "unknown (not Linux x86)",
        "native_bf16": sorted(f for f in H.NATIVE_BF16_FLAGS if f in (flags or ())),
        "onednn_max_cpu_isa": H.onednn_isa_cap(),
        "cpus": {
            "affinity": affinity,
            "cgroup_cpu_limit": limit,
            "usable": cores_within_quota(affinity, limit),
        },
        "device": dev.name if dev.type == "cuda" else dev.type,
        "torch": torch.__version__,
    }
    requested = cfg.precision
    cfg = resolve_precision(cfg, dev)
    report["precision"] = _choice(requested, cfg.precision, cfg.auto.precision)
    threads, why = resolve_cpu_threads(cfg, cpus=(affinity, limit))
    report["cpu_threads"] = _choice(cfg.cpu_threads, threads, why)
    with num_threads(threads):  # the probe's key and timing use the run's count
        report["channels_last"] = _memory_format(cfg, dev.type, workload, probe)
    allocator, why = allocator_choice(cfg.cpu_allocator, dev.type, glibc() is not None)
    report["cpu_allocator"] = {"requested": cfg.cpu_allocator, "resolved": allocator, "why": why}
    if dev.type == "cpu":
        # a run computes on its threads, at most the CPUs it may use
        cores = min(float(threads), H.cpu_capacity())
        report["peak_gflops"] = {
            p: {"gflops": round(v[0], 1), "how": v[1]}
            for p in dict.fromkeys((cfg.precision, "32-true"))
            if (v := H.cpu_peak_gflops(p, cores=cores)) is not None
        }
    return report


def _choice(requested: Any, resolved: Any, why: str) -> dict[str, Any]:
    return {"requested": requested, "resolved": resolved, "why": why or "set explicitly"}


def _memory_format(
    cfg: TrainConfig, device_type: str, workload: Workload | None, probe: bool
) -> dict[str, Any]:
    if cfg.channels_last != AUTO:
        return _choice(cfg.channels_last, cfg.channels_last, "")
    if device_type != "cpu" or cfg.devices > 1:  # decided by rule: shape and classes play no part
        cfg = resolve_channels_last(cfg, (3, 32, 32), 2, device_type)
        return _choice(AUTO, cfg.channels_last, cfg.auto.channels_last)
    if workload is None:
        return _choice(AUTO, None, "a timed probe of the run's model when it starts (cached per machine)")
    cached = cached_memory_format(cfg, *workload)
    if cached is None and not probe:
        return _choice(AUTO, None, "not probed yet for this workload on this machine: --probe times it now")
    use, why = cached or probe_memory_format(cfg, *workload)
    return _choice(AUTO, use, f"auto -> {str(use).lower()}: {why}")


__all__ = ["machine_report", "Workload"]
