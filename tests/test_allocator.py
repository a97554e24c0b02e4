"""``cpu_allocator``: what ``retain`` asks of glibc, when it applies, and that glibc then keeps freed blocks."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

from difair.config import FAST_PATH, TrainConfig, apply_overrides
from difair.engine import allocator as A
from difair.errors import DifairError


class FakeLibc:
    """Records mallopt calls; ``refuse`` lists parameters it answers 0 for, as glibc does for a bad value."""

    def __init__(self, refuse: tuple[int, ...] = ()):
        self.calls: list[tuple[int, int]] = []
        self.refuse = refuse

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append((param, value))
        return 0 if param in self.refuse else 1


def test_retain_raises_the_three_glibc_limits_on_cpu_runs_only():
    libc = FakeLibc()
    assert A.apply_cpu_allocator("retain", "cpu", libc) is True
    assert dict(libc.calls) == {
        A.M_MMAP_THRESHOLD: 1 << 30,
        A.M_TRIM_THRESHOLD: 2**31 - 1,
        A.M_TOP_PAD: 1 << 30,
    }
    assert (A.M_MMAP_THRESHOLD, A.M_TRIM_THRESHOLD, A.M_TOP_PAD) == (-3, -1, -2)  # malloc.h's numbers
    for choice, device in (("system", "cpu"), ("retain", "cuda"), ("retain", "mps")):
        untouched = FakeLibc()
        assert A.apply_cpu_allocator(choice, device, untouched) is False and untouched.calls == []


def test_retain_warns_where_it_cannot_be_set(monkeypatch):
    with pytest.warns(UserWarning, match=r"refused mallopt parameters \[-3\]"):
        assert A.apply_cpu_allocator("retain", "cpu", FakeLibc(refuse=(A.M_MMAP_THRESHOLD,))) is False
    monkeypatch.setattr(A, "glibc", lambda: None)  # macOS, Windows, musl
    with pytest.warns(UserWarning, match="needs glibc"):
        assert A.apply_cpu_allocator("retain", "cpu") is False


def test_fast_path_asks_for_retain_and_the_digest_ignores_it():
    fast = TrainConfig.from_dict(apply_overrides(TrainConfig().to_dict(), list(FAST_PATH)))
    assert fast.cpu_allocator == "retain" and TrainConfig().cpu_allocator == "system"
    plain = TrainConfig.from_dict(apply_overrides(fast.to_dict(), ["cpu_allocator=system"]))
    assert plain.digest() == fast.digest()  # an execution choice: the same run either way
    bad = TrainConfig.from_dict(apply_overrides(TrainConfig().to_dict(), ["cpu_allocator=jemalloc"]))
    with pytest.raises(DifairError, match="unknown cpu_allocator 'jemalloc': choose one of system, retain"):
        bad.validate()


def test_the_training_loop_applies_the_runs_choice(monkeypatch):
    from difair.data import get_dataset
    from difair.engine import loop as L
    from tiny import tiny_config

    seen: list[tuple[str, str]] = []
    monkeypatch.setattr(L, "apply_cpu_allocator", lambda choice, device: seen.append((choice, device)))
    cfg = tiny_config("difair", epochs=1, extra=["cpu_allocator=retain", "accelerator=cpu"])
    L.build_loop(cfg, get_dataset(cfg.data))
    assert seen == [("retain", "cpu")]


_PROBE = textwrap.dedent(
    """
    import ctypes, sys
    from difair.engine.allocator import apply_cpu_allocator, glibc

    libc = glibc()
    if libc is None or not hasattr(libc, "mallinfo2"):
        print("skip"); sys.exit()
    names = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()
    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in names]
    libc.mallinfo2.restype = MallInfo2
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    if sys.argv[1] == "retain":
        assert apply_cpu_allocator("retain", "cpu")
    n = 64 << 20  # above glibc's largest dynamic mmap threshold (32 MiB)
    block = libc.malloc(n)
    mmapped = libc.mallinfo2().hblkhd >= n
    libc.free(block)
    kept = libc.mallinfo2().fordblks >= n  # free bytes the heap holds for the next malloc
    print(mmapped, kept)
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's (Linux)")
def test_with_retain_glibc_keeps_a_freed_64mb_block_for_reuse():
    def probe(choice: str) -> str:
        out = subprocess.run(
            [sys.executable, "-c", _PROBE, choice], capture_output=True, text=True, check=True
        )
        return out.stdout.strip()

    system, retain = probe("system"), probe("retain")
    if system == "skip":
        pytest.skip("not glibc >= 2.33 (no mallinfo2)")
    assert system == "True False"  # as it is: a fresh mapping, handed back on free
    assert retain == "False True"  # retain: from the heap, and kept there after free


@pytest.mark.parametrize(
    ("choice", "device", "glibc", "resolved", "fragment"),
    [
        ("retain", "cpu", True, "retain", "glibc keeps freed blocks"),
        ("retain", "cpu", False, "system", "needs glibc"),
        ("retain", "cuda", True, "system", "cuda"),
        ("system", "cpu", True, "system", "as it is"),
    ],
)
def test_allocator_choice_on_every_branch(choice, device, glibc, resolved, fragment):
    got, why = A.allocator_choice(choice, device, glibc)
    assert got == resolved and fragment in why


@pytest.mark.parametrize(
    "argv, evaluates",
    [
        (["eval", "RUN"], True),
        (["predict", "RUN", "x.png"], True),
        (["calibrate", "RUN"], True),
        (["explain", "RUN", "x.png", "--out", "o"], True),
        (["report", "RUN"], True),
        (["plot", "RUN", "tsne", "--out", "o.png"], True),
        (["export", "RUN", "--out", "o"], True),
        (["train"], False),  # a run applies its own cpu_allocator
        (["demo"], False),
        (["presets"], False),
        (["hardware"], False),
    ],
)
def test_commands_that_compute_a_runs_outputs_keep_freed_blocks(argv, evaluates):
    from difair.cli import build_parser

    assert getattr(build_parser().parse_args(argv), "evaluates", False) is evaluates


def test_an_evaluating_command_retains_on_cpu_quietly_and_leaves_other_devices(monkeypatch):
    import warnings

    from difair.cliutil import evaluation_process

    libc = FakeLibc()
    monkeypatch.setattr(A, "glibc", lambda: libc)
    assert evaluation_process("cpu") is True and len(libc.calls) == 3
    libc.calls.clear()
    assert evaluation_process("cuda") is False and libc.calls == []
    assert evaluation_process("cuda:1") is False and libc.calls == []  # Fabric's rule once read it as a CPU
    assert evaluation_process("tpu0") is False and libc.calls == []  # the command names the bad device
    mps = getattr(torch.backends, "mps", None)
    if mps is not None:  # auto: where the command computes (pick_device: CUDA, else the CPU), never MPS
        monkeypatch.setattr(mps, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert evaluation_process(None) is True and len(libc.calls) == 3
    libc.calls.clear()
    monkeypatch.setattr(A, "glibc", lambda: None)  # macOS: nobody asked for retain, so no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert evaluation_process("cpu") is False


def test_the_cli_applies_it_before_the_command_runs(monkeypatch, capsys):
    import difair.cli as cli

    seen = []
    monkeypatch.setattr(cli, "evaluation_process", seen.append)
    assert cli.main(["predict", "no-run", "no-image.png", "--device", "cpu"]) == 2
    assert seen == ["cpu"]
    assert cli.main(["presets"]) == 0
    assert seen == ["cpu"]
