"""What the CPU offers for the fast path: its feature flags and whether bf16 runs natively."""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # x86: AVX512-BF16 dot products, or AMX tiles


@functools.cache
def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str] | None:
    """The CPU's feature flags from ``cpuinfo`` (Linux x86), or None where that file does not say."""
    try:
        for line in Path(cpuinfo).read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def native_bf16_cpu() -> bool | None:
    """Whether the CPU computes bf16 natively (True/False), or None when it cannot be told (not Linux x86)."""
    flags = cpu_flags()
    return None if flags is None else any(f in flags for f in NATIVE_BF16_FLAGS)


def warn_if_slow_bf16(device_type: str, precision: str) -> None:
    """A warning when bf16 autocast runs on a CPU without native bf16, where it is often slower than fp32."""
    if device_type == "cpu" and precision == "bf16-mixed" and native_bf16_cpu() is False:
        warnings.warn(
            "precision=bf16-mixed on a CPU without native bf16 (no AVX512-BF16 or AMX): it may train slower "
            "than --set precision=32-true",
            stacklevel=3,
        )
