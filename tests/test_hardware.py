"""CPU feature detection and the slow-bf16 warning."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from difair.engine import hardware


def test_cpu_flags_reads_the_flags_line(tmp_path: Path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu sse2 avx512f avx512_bf16\n\n")
    assert hardware.cpu_flags(str(info)) == frozenset({"fpu", "sse2", "avx512f", "avx512_bf16"})
    assert hardware.cpu_flags(str(tmp_path / "missing")) is None


@pytest.mark.parametrize(
    "flags, device, precision, warned",
    [
        (frozenset({"avx512f"}), "cpu", "bf16-mixed", True),  # AVX512 without bf16: emulated
        (frozenset({"avx512f", "avx512_bf16"}), "cpu", "bf16-mixed", False),
        (frozenset({"amx_bf16", "amx_tile"}), "cpu", "bf16-mixed", False),
        (frozenset({"avx2"}), "cpu", "32-true", False),
        (frozenset({"avx2"}), "cuda", "bf16-mixed", False),
        (None, "cpu", "bf16-mixed", False),  # cannot tell: no warning
    ],
)
def test_warns_only_for_bf16_on_a_cpu_without_it(monkeypatch, flags, device, precision, warned):
    monkeypatch.setattr(hardware, "cpu_flags", lambda: flags)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hardware.warn_if_slow_bf16(device, precision)
    assert [("native bf16" in str(w.message)) for w in caught] == ([True] if warned else [])
