"""What the hardware offers: CPU feature flags, vector width, native bf16, the peak, and the precision rule of
``precision=auto``."""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from difair.cpus import cpu_capacity

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # x86: AVX512-BF16 dot products, or AMX tiles
# oneDNN ISA caps (values of ONEDNN_MAX_CPU_ISA) below the first with bf16 dot products (AVX512_CORE_BF16), with
# the fp32 FMA lanes of each; a cap from AVX512_CORE_BF16 on narrows nothing these rules look at
ONEDNN_CAPS_WITHOUT_BF16 = {
    "SSE41": 4,
    "AVX": 8,
    "AVX2": 8,
    "AVX2_VNNI": 8,
    "AVX2_VNNI_2": 8,
    "AVX512_CORE": 16,
    "AVX512_CORE_VNNI": 16,
}
# fp32 FMA lanes per instruction by vector ISA (x86), for the peak estimate of ``cpu_peak_gflops``.
FP32_LANES = (("avx512f", 16), ("avx2", 8), ("avx", 8), ("sse2", 4))
# bf16 flop per cycle per core of an AMX tile unit (TMUL: 512 bf16 multiply-adds a cycle, Intel's figure for
# Sapphire Rapids on), used for the bf16 peak when the CPU has amx_bf16 and oneDNN may use it
AMX_BF16_FLOP_PER_CYCLE = 1024
# (vendor, family) of CPUs that run 512-bit instructions on 256-bit FMA units, two halves each: AMD family 25
# with avx512f is Zen 4 (Genoa, Raphael, Phoenix; Zen 3, the same family, has no AVX-512). Their AVX-512 peak
# is that of AVX2 (on the 2-core Zen 4, bf16 GEMM 415 and fp32 190 GFLOP/s: docs/performance.md). Zen 5 laptop
# parts (family 26) are said to split 512-bit work too; not listed, since no such CPU was measured.
HALF_WIDTH_AVX512 = {("AuthenticAMD", 25)}


def cpuinfo_fields(cpuinfo: str = "/proc/cpuinfo") -> dict[str, str] | None:
    """The first value of each key in ``cpuinfo`` (Linux: the first processor's), or None where it is absent."""
    fields: dict[str, str] = {}
    try:
        for line in Path(cpuinfo).read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        return None
    return fields


@functools.cache
def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str] | None:
    """The CPU's feature flags from ``cpuinfo`` (Linux x86), or None where that file does not say."""
    flags = (cpuinfo_fields(cpuinfo) or {}).get("flags")
    return None if flags is None else frozenset(flags.split())


@functools.cache
def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU's model name with family/model (Linux x86), else ``platform.processor()``."""
    fields = cpuinfo_fields(cpuinfo)
    if fields is None:
        return platform.processor() or platform.machine() or "unknown"
    name = fields.get("model name", platform.processor() or "unknown")
    if "cpu family" in fields:
        name += f" (family {fields['cpu family']} model {fields.get('model', '?')})"
    return name


@functools.cache
def cpu_vendor_family(cpuinfo: str = "/proc/cpuinfo") -> tuple[str, int] | None:
    """``(vendor_id, cpu family)`` from ``cpuinfo`` (Linux x86), e.g. ``("AuthenticAMD", 25)``, or None."""
    fields = cpuinfo_fields(cpuinfo) or {}
    try:
        return fields["vendor_id"], int(fields["cpu family"])
    except (KeyError, ValueError):
        return None


def onednn_isa_cap(environ: Mapping[str, str] | None = None) -> str | None:
    """The ISA cap set by ``ONEDNN_MAX_CPU_ISA`` (upper case), or None when unset or ``DEFAULT``."""
    value = (os.environ if environ is None else environ).get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    return None if value in ("", "DEFAULT", "ALL") else value


def native_bf16_cpu(flags: frozenset[str] | None = None, isa_cap: str | None | bool = False) -> bool | None:
    """Whether the CPU computes bf16 natively (True/False), or None when it cannot be told (not Linux x86).

    ``isa_cap``: the oneDNN ISA cap (``False``: read ``ONEDNN_MAX_CPU_ISA``); a cap below AVX512_CORE_BF16 makes
    oneDNN emulate bf16 even on a CPU with the flags, so the answer is then False.
    """
    flags = cpu_flags() if flags is None else flags
    cap = onednn_isa_cap() if isa_cap is False else isa_cap
    if flags is None:
        return None
    return any(f in flags for f in NATIVE_BF16_FLAGS) and cap not in ONEDNN_CAPS_WITHOUT_BF16


@dataclass(frozen=True)
class DeviceInfo:
    """What the precision rule needs to know about the device a run trains on."""

    type: str  # cpu | cuda | mps
    cuda_capability: tuple[int, int] | None = None
    cpu_flags: frozenset[str] | None = None
    name: str = ""
    isa_cap: str | None = None  # ONEDNN_MAX_CPU_ISA, when set


def device_type_for(accelerator: str) -> str:
    """The device type Lightning Fabric picks for ``accelerator`` (``auto``: CUDA, then MPS, then CPU)."""
    import torch

    if accelerator in ("cuda", "gpu"):
        return "cuda"
    if accelerator != "auto":
        return accelerator
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def device_info(accelerator: str) -> DeviceInfo:
    """The device of ``accelerator`` as the precision rule sees it."""
    import torch

    kind = device_type_for(accelerator)
    if kind == "cuda" and torch.cuda.is_available():
        return DeviceInfo(
            "cuda", torch.cuda.get_device_capability(0), cpu_flags(), torch.cuda.get_device_name(0)
        )
    return DeviceInfo(kind, None, cpu_flags(), cpu_model() if kind == "cpu" else kind, onednn_isa_cap())


def auto_precision(dev: DeviceInfo) -> tuple[str, str]:
    """``precision=auto``: the Fabric precision for ``dev`` and the reason, by rule (docs/performance.md).

    CUDA with compute capability >= 8.0 (Ampere on): bf16-mixed; older CUDA: 16-mixed (Fabric adds the gradient
    scaler); a CPU with AVX512-BF16 or AMX: bf16-mixed; any other CPU (AVX2 only, ARM, unknown): 32-true, since
    oneDNN emulates bf16 there at 6-8x the cost of fp32; MPS: 32-true (Fabric 2.x hands ``device="cuda"`` to
    autocast when the accelerator is ``auto`` on a Mac, and difair's tests do not cover MPS autocast).
    """
    if dev.type == "cuda":
        cap = dev.cuda_capability or (0, 0)
        if cap >= (8, 0):
            return (
                "bf16-mixed",
                f"CUDA {dev.name} (compute capability {cap[0]}.{cap[1]} >= 8.0): bf16 autocast",
            )
        return "16-mixed", f"CUDA {dev.name} (compute capability {cap[0]}.{cap[1]} < 8.0): fp16 autocast"
    if dev.type == "cpu":
        native = native_bf16_cpu(dev.cpu_flags, dev.isa_cap) if dev.cpu_flags is not None else None
        found = sorted(f for f in NATIVE_BF16_FLAGS if f in (dev.cpu_flags or ()))
        if native:
            return "bf16-mixed", f"CPU with native bf16 ({', '.join(found)}): bf16 autocast"
        if found:
            why = f"ONEDNN_MAX_CPU_ISA={dev.isa_cap} keeps oneDNN below AVX512_CORE_BF16 although the CPU has {', '.join(found)}"
        else:
            why = "no avx512_bf16/amx_bf16" if native is False else "CPU features unknown"
        return "32-true", f"CPU without native bf16 ({why}): fp32"
    return "32-true", f"{dev.type}: fp32 (autocast there is not covered by difair's tests)"


def vector_isa(
    flags: frozenset[str] | None, vendor_family: tuple[str, int] | None = None
) -> tuple[str, int] | None:
    """The widest vector ISA in ``flags`` and its fp32 FMA lanes as the CPU executes them (AVX-512 on 256-bit
    units counts 8: ``HALF_WIDTH_AVX512``), e.g. ``("avx512f on 256-bit units", 8)``; None when not x86."""
    lanes = next((n for f, n in FP32_LANES if f in (flags or ())), None)
    if lanes is None:
        return None
    isa = next(f for f, n in FP32_LANES if n == lanes and f in (flags or ()))
    if lanes > 8 and vendor_family in HALF_WIDTH_AVX512:
        return f"{isa} on 256-bit units", 8
    return isa, lanes


def cpu_peak_gflops(
    precision: str,
    flags: frozenset[str] | None = None,
    cores: float | None = None,
    ghz: float | None = None,
    vendor_family: tuple[str, int] | None = None,
) -> tuple[float, str] | None:
    """Theoretical fp32 (or native bf16) FMA peak of the CPU in GFLOP/s and how it was counted, or None.

    ``cores x 2 FMA units x lanes x 2 flop x clock``: lanes by the widest vector ISA in ``flags`` (x2 for
    bf16 dot products where the CPU has them), AVX-512 counted at 256 bits on CPUs with half-width units
    (``HALF_WIDTH_AVX512``, by ``vendor_family``, read from ``/proc/cpuinfo`` with the flags); bf16 on a CPU with
    AMX (unless ``ONEDNN_MAX_CPU_ISA`` keeps oneDNN below it) counts the tile unit instead, ``cores x 1024 flop x
    clock``. ``cores``: the CPU time the process may use (``cpus.cpu_capacity``: a 1.5-CPU quota counts 1.5).
    The clock is the nominal one from ``/proc/cpuinfo`` (or ``ghz``), so turbo or throttling moves the achieved
    fraction.
    """
    if flags is None:  # this CPU; flags given describe another one, whose vendor_family is given or unknown
        flags, vendor_family = cpu_flags(), vendor_family or cpu_vendor_family()
    if cores is None:
        cores = cpu_capacity()
    ghz = ghz or _nominal_ghz()
    vector = vector_isa(flags, vendor_family)
    if vector is None or not ghz or not cores:
        return None
    isa, lanes = vector
    cap = onednn_isa_cap()
    if ONEDNN_CAPS_WITHOUT_BF16.get(cap, lanes) < lanes:  # oneDNN kept to a narrower ISA
        lanes, isa = ONEDNN_CAPS_WITHOUT_BF16[cap], f"ONEDNN_MAX_CPU_ISA={cap}"
    if precision.startswith("bf16") and native_bf16_cpu(flags, cap):
        if "amx_bf16" in flags and (cap is None or "AMX" in cap):
            peak = cores * AMX_BF16_FLOP_PER_CYCLE * ghz
            return (
                peak,
                f"{cores:g} core{'s' * (cores != 1)} x {AMX_BF16_FLOP_PER_CYCLE} flop (AMX-BF16 tiles) x {ghz:.2f} GHz",
            )
        lanes, isa = lanes * 2, isa + "+bf16"
    peak = cores * 2 * lanes * 2 * ghz
    return (
        peak,
        f"{cores:g} core{'s' * (cores != 1)} x 2 FMA x {lanes} lanes ({isa}) x 2 flop x {ghz:.2f} GHz",
    )


def _nominal_ghz(cpuinfo: str = "/proc/cpuinfo") -> float | None:
    """The nominal clock: ``@ X.XXGHz`` in the model name, else ``cpu MHz``, else BogoMIPS / 2."""
    fields = cpuinfo_fields(cpuinfo)
    if fields is None:
        return None
    name = fields.get("model name", "")
    if "GHz" in name:
        with contextlib.suppress(IndexError, ValueError):
            return float(name.rsplit("@", 1)[1].strip().removesuffix("GHz"))
    if fields.get("cpu MHz"):
        return float(fields["cpu MHz"]) / 1000
    return float(fields["bogomips"]) / 2000 if fields.get("bogomips") else None


def warn_if_slow_bf16(device_type: str, precision: str) -> None:
    """A warning when bf16 autocast runs on a CPU without native bf16, where it is often slower than fp32."""
    if device_type == "cpu" and precision == "bf16-mixed" and native_bf16_cpu() is False:
        warnings.warn(
            "precision=bf16-mixed on a CPU without native bf16 (no AVX512-BF16 or AMX): it may train slower "
            "than --set precision=32-true (or precision=auto)",
            stacklevel=3,
        )
