"""``cpu_allocator``: whether the C allocator keeps the large blocks a CPU training step frees, for reuse.

glibc hands every freed block above its mmap threshold (128 KiB, raised after frees to at most 32 MiB) back to
the system and trims the heap's top above 128 KiB. A CPU training step allocates and frees activations of 1-100 MB
each, so without reuse each of them is fresh pages that the kernel faults in and zeroes: a LeakyReLU on a
128x64x32x32 bf16 map took 7.5 ms out of place against 1.4 ms with freed blocks kept (docs/performance.md).
``retain`` raises the three limits (``mallopt``), so freed blocks stay in the process for the next step, as
PyTorch's CUDA caching allocator keeps GPU memory. It is process-wide and stays for the rest of the process;
``system`` leaves the allocator as it is. Elsewhere than glibc (macOS, Windows, musl) ``retain`` does nothing.
"""

from __future__ import annotations

import ctypes
import platform
import warnings
from typing import Any

# glibc's mallopt parameters (malloc.h) and the values of ``retain``: blocks under 1 GiB come from the heap and
# go back to it; the heap's top is never trimmed (2 GiB - 1, mallopt's int limit) and grows 1 GiB at a time
# (address space only: untouched pages cost no memory)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
RETAIN_SETTINGS = ((M_MMAP_THRESHOLD, 1 << 30), (M_TRIM_THRESHOLD, (1 << 31) - 1), (M_TOP_PAD, 1 << 30))


def glibc() -> Any | None:
    """The process's glibc through ctypes, or None where the C library is another one."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    return ctypes.CDLL(None)  # the process's own symbols, glibc's among them (no library search)


NO_GLIBC = "retain needs glibc (Linux); this C library is left as it is"


def allocator_choice(choice: str, device_type: str, has_glibc: bool) -> tuple[str, str]:
    """What ``cpu_allocator=choice`` does for a run on ``device_type`` (``retain`` or ``system``), and why."""
    if choice != "retain":
        return "system", "the C allocator as it is"
    if device_type != "cpu":
        return "system", f"{device_type}: the run's tensors are not in the C allocator's heap"
    if not has_glibc:
        return "system", NO_GLIBC
    return "retain", "glibc keeps freed blocks for the next step (mallopt)"


def apply_cpu_allocator(choice: str, device_type: str, libc: Any | None = None, warn: bool = True) -> bool:
    """Apply ``cpu_allocator=choice`` for a run whose tensors live on ``device_type``; True when ``retain`` was set.

    ``system``, or a run off the CPU, changes nothing. ``retain`` where it cannot be set warns (unless ``warn`` is
    false: nobody asked for it) and goes on with the allocator as it is (speed is all it changes). ``libc``: the C
    library to call (tests).
    """
    libc = libc if libc is not None else glibc()
    resolved, why = allocator_choice(choice, device_type, libc is not None)
    if resolved != "retain":
        if why == NO_GLIBC and warn:
            warnings.warn(f"cpu_allocator={why}", stacklevel=2)
        return False
    refused = [param for param, value in RETAIN_SETTINGS if libc.mallopt(param, value) != 1]
    if refused:
        warnings.warn(
            f"cpu_allocator=retain: glibc refused mallopt parameters {refused}; freed blocks may still be returned",
            stacklevel=2,
        )
    return not refused
