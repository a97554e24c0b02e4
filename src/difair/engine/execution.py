"""Resolve ``precision=auto`` and ``channels_last=auto`` for the device a run trains on.

Precision follows a rule (``difair.engine.hardware.auto_precision``). The memory format is a rule on GPUs
(channels_last on CUDA, contiguous on MPS) and a short timed probe on CPU, where the faster format depends on
the model (measured: contiguous wins for the digits CNN, channels_last for VGG32 in fp32 on AVX2): a few
training steps of the actual model in each format, alternating, like cuDNN's benchmark mode. The probe's
verdict is cached per machine and workload in ``probe-cache.json`` under the cache folder (``$DIFAIR_CACHE``,
else ``$XDG_CACHE_HOME/difair``, else ``~/.cache/difair``), behind a file lock so that parallel runs probe once.

Values the user sets explicitly are never changed; what ``auto`` became, and why, is kept in ``cfg.auto``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from difair.config import AUTO, TrainConfig
from difair.data.augment import Augmenter
from difair.engine import rundir as R
from difair.engine.build import build_model
from difair.engine.hardware import DeviceInfo, auto_precision, cpu_flags, cpu_model, device_info
from difair.errors import DifairError
from difair.paths import cache_home

PROBE_WARMUP = 2  # untimed steps per memory format, both formats warmed up before any is timed
PROBE_STEPS = 4  # timed steps per memory format, alternating between the formats step by step
PROBE_MARGIN = 0.03  # channels_last must be this much faster to replace the default contiguous format
PROBE_FILE = "probe-cache.json"

StepTimer = Callable[[TrainConfig, tuple[int, int, int], int], dict[bool, list[float]]]


def cache_dir() -> Path:
    """Where the probe's verdicts are kept: difair's cache home (``difair.paths.cache_home``)."""
    return cache_home()


def resolve_precision(cfg: TrainConfig, dev: DeviceInfo | None = None) -> TrainConfig:
    """``cfg`` with ``precision=auto`` replaced by the rule's choice for the device (a no-op otherwise)."""
    if cfg.precision != AUTO:
        return cfg
    dev = dev or device_info(cfg.accelerator)
    cfg.precision, why = auto_precision(dev)
    cfg.auto.precision = f"auto -> {cfg.precision}: {why}"
    return cfg


def resolve_channels_last(
    cfg: TrainConfig,
    input_shape: tuple[int, int, int],
    num_classes: int,
    device_type: str,
    *,
    timer: StepTimer | None = None,
) -> TrainConfig:
    """``cfg`` with ``channels_last=auto`` replaced: true on CUDA, false on MPS, a cached timed probe on CPU.

    ``input_shape`` is one training image's ``(C, H, W)``. Needs a resolved precision. With ``devices > 1``
    the CPU probe is skipped (every process must choose alike) and the contiguous format is used.
    """
    if cfg.channels_last != AUTO:
        return cfg
    if device_type == "cuda":
        cfg.channels_last, why = True, "CUDA: channels_last (tensor-core convolutions run NHWC)"
    elif device_type != "cpu":
        cfg.channels_last, why = False, f"{device_type}: contiguous"
    elif cfg.devices > 1:
        cfg.channels_last, why = False, "devices > 1: contiguous (no timed probe across processes)"
    else:
        cfg.channels_last, why = probe_memory_format(cfg, input_shape, num_classes, timer=timer)
    cfg.auto.channels_last = f"auto -> {str(cfg.channels_last).lower()}: {why}"
    return cfg


def probe_key(cfg: TrainConfig, input_shape: tuple[int, int, int], num_classes: int) -> str:
    """What the verdict depends on: the machine (CPU, flags, threads, torch) and the workload."""
    parts = {
        "cpu": cpu_model(),
        "flags": hashlib.sha256(" ".join(sorted(cpu_flags() or ())).encode()).hexdigest()[:12],
        "onednn_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", ""),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "precision": cfg.precision,
        "method": cfg.method,
        "backbone": cfg.model.backbone,
        "width": cfg.model.width,
        "batch": cfg.batch_size,
        "input": list(input_shape),
        "classes": num_classes,
    }
    return json.dumps(parts, sort_keys=True)


def cached_memory_format(
    cfg: TrainConfig, input_shape: tuple[int, int, int], num_classes: int
) -> tuple[bool, str] | None:
    """The probe's cached verdict for ``cfg``'s workload on this machine and its evidence, or None."""
    cached = _read_cache(cache_dir() / PROBE_FILE).get(probe_key(cfg, input_shape, num_classes))
    return None if cached is None else (bool(cached["channels_last"]), cached["why"] + " (cached)")


def probe_memory_format(
    cfg: TrainConfig,
    input_shape: tuple[int, int, int],
    num_classes: int,
    *,
    timer: StepTimer | None = None,
) -> tuple[bool, str]:
    """Whether channels_last trains ``cfg``'s model faster on this CPU, and the evidence (cached)."""
    key = probe_key(cfg, input_shape, num_classes)
    path = cache_dir() / PROBE_FILE
    with _locked(path):
        cache = _read_cache(path)
        cached = cache.get(key)
        if cached is not None:
            return bool(cached["channels_last"]), cached["why"] + " (cached)"
        times = (timer or time_training_steps)(cfg, input_shape, num_classes)
        med = {fmt: statistics.median(times[fmt]) for fmt in (False, True)}
        use = med[True] < med[False] * (1 - PROBE_MARGIN)
        why = (
            f"timed probe on {cpu_model()}: channels_last {med[True] * 1e3:.1f} ms vs contiguous "
            f"{med[False] * 1e3:.1f} ms per step of {cfg.batch_size}"
        )
        cache[key] = {"channels_last": use, "why": why, "ms": {str(k): v * 1e3 for k, v in med.items()}}
        _write_cache(path, cache)
    return use, why


def time_training_steps(
    cfg: TrainConfig, input_shape: tuple[int, int, int], num_classes: int
) -> dict[bool, list[float]]:
    """Seconds per training step (augmentation, layout change, forward, loss, backward, SGD) of ``cfg``'s model
    on random images, on CPU, in each memory format (key: channels_last). Both formats are warmed up first
    (kernel choice, allocator, thread pool), then timed alternately step by step, so that process warm-up and
    machine noise hit both alike.
    """
    c = input_shape[0]
    augment = Augmenter(cfg.augment)
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(cfg.precision)
    with torch.random.fork_rng(devices=[]):  # the run's own seeding is untouched
        torch.manual_seed(0)
        x = torch.randint(0, 256, (cfg.batch_size, *input_shape), dtype=torch.uint8)
        y = torch.randint(0, num_classes, (cfg.batch_size,))
        setups = {}
        for fmt in (False, True):
            mf = torch.channels_last if fmt else torch.contiguous_format
            model, method = build_model(cfg, num_classes, c, [0.5] * c, [0.25] * c, load_weights=False)
            model = model.to(memory_format=mf).train()
            opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
            setups[fmt] = (model, method, opt, mf)
        gen = torch.Generator().manual_seed(0)

        def step(fmt: bool) -> float:
            model, method, opt, mf = setups[fmt]
            t0 = time.perf_counter()
            xf = augment(x, gen).contiguous(memory_format=mf)
            with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
                loss = method.loss_terms(model(xf), y, model.head)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return time.perf_counter() - t0

        for _ in range(PROBE_WARMUP):
            for fmt in (False, True):
                step(fmt)
        times: dict[bool, list[float]] = {False: [], True: []}
        for i in range(PROBE_STEPS):
            for fmt in (False, True) if i % 2 == 0 else (True, False):
                times[fmt].append(step(fmt))
    return times


def auto_record(cfg: TrainConfig) -> dict[str, Any]:
    """The request and the resolved value of each auto-able option, for ``results.json``."""
    out = {}
    for key in ("precision", "channels_last"):
        why = getattr(cfg.auto, key)
        out[key] = {"requested": AUTO if why else getattr(cfg, key), "resolved": getattr(cfg, key)}
        if why:
            out[key]["why"] = why
    # the count this process computed with (set by difair.engine.threads when the run started)
    out["cpu_threads"] = {"requested": cfg.cpu_threads, "resolved": torch.get_num_threads()}
    if cfg.auto.cpu_threads:
        out["cpu_threads"]["why"] = cfg.auto.cpu_threads
    return out


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(path: Path, data: dict[str, Any]) -> None:
    with contextlib.suppress(OSError, DifairError):  # an unwritable cache only costs a probe next time
        R.atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True))


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock beside ``path`` (POSIX ``flock``; no lock where that is unavailable)."""
    try:
        import fcntl

        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(path.with_suffix(".lock"), "a")  # noqa: SIM115 (held across the yield)
    except (ImportError, OSError):
        yield
        return
    try:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield
    finally:
        fh.close()


__all__ = [
    "cache_dir",
    "resolve_precision",
    "resolve_channels_last",
    "probe_memory_format",
    "cached_memory_format",
    "time_training_steps",
    "auto_record",
]
