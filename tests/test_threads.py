"""cpu_threads=auto: the cgroup CPU quota read from v1 and v2 trees, the usable CPUs, the thread rule, the record."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from difair.config import TrainConfig
from difair.engine import threads as T
from difair.engine.hardware import cgroup_cpu_limit, usable_cores
from difair.errors import DifairError


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_quota_is_the_smallest_on_the_path_to_the_root(tmp_path: Path):
    root, proc = tmp_path / "cg", tmp_path / "proc-cgroup"
    _write(proc, "0::/kubepods/pod1/ctr\n")
    _write(root / "cgroup.controllers", "cpu memory\n")
    _write(root / "kubepods/pod1/ctr/cpu.max", "max 100000\n")  # no limit on the container itself
    _write(root / "kubepods/pod1/cpu.max", "150000 100000\n")  # the pod's limit: 1.5 CPUs
    _write(root / "kubepods/cpu.max", "400000 100000\n")
    assert cgroup_cpu_limit(proc, root) == pytest.approx(1.5)
    _write(root / "kubepods/pod1/cpu.max", "max 100000\n")
    assert cgroup_cpu_limit(proc, root) == pytest.approx(4.0)
    _write(root / "kubepods/cpu.max", "max 100000\n")
    assert cgroup_cpu_limit(proc, root) is None


def test_cgroup_v1_quota_from_cfs_files_and_unlimited_minus_one(tmp_path: Path):
    root, proc = tmp_path / "cg", tmp_path / "proc-cgroup"
    _write(proc, "5:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n")
    ctr = root / "cpu,cpuacct/docker/abc"
    _write(ctr / "cpu.cfs_quota_us", "200000\n")
    _write(ctr / "cpu.cfs_period_us", "100000\n")
    assert cgroup_cpu_limit(proc, root) == pytest.approx(2.0)  # v2 line skipped: no cgroup.controllers there
    _write(ctr / "cpu.cfs_quota_us", "-1\n")
    assert cgroup_cpu_limit(proc, root) is None
    _write(ctr / "cpu.cfs_quota_us", "garbage\n")
    assert cgroup_cpu_limit(proc, root) is None


def test_no_proc_file_means_no_limit(tmp_path: Path):
    assert cgroup_cpu_limit(tmp_path / "absent", tmp_path) is None


@pytest.mark.parametrize(
    ("limit", "affinity", "expected"),
    # a quarter of a CPU or more counts as one more thread (measured crossover: docs/performance.md)
    [
        (None, 4, 4),
        (1.0, 4, 1),
        (1.2, 4, 1),
        (1.25, 4, 2),
        (1.5, 4, 2),
        (0.5, 4, 1),
        (0.1, 4, 1),
        (8.0, 2, 2),
        (2.0, 64, 2),
    ],
)
def test_usable_cores_is_the_mask_capped_by_the_quota(limit, affinity, expected):
    assert usable_cores(limit=limit, affinity=affinity) == expected


@pytest.mark.parametrize(
    ("current", "usable", "processes", "env", "expected"),
    [
        (2, 2, 1, {}, 2),  # PyTorch's count fits: kept
        (64, 2, 1, {}, 2),  # a 2-CPU quota on a 64-core host: lowered
        (2, 2, 2, {}, 1),  # two DDP processes on 2 CPUs: one thread each
        (4, 3, 2, {}, 1),  # shares round down, never below 1
        (1, 1, 4, {}, 1),
        (8, 2, 1, {"OMP_NUM_THREADS": "8"}, 8),  # the user's environment wins
        (8, 2, 1, {"OMP_NUM_THREADS": " "}, 2),  # an empty setting is no setting
    ],
)
def test_auto_thread_rule(current, usable, processes, env, expected):
    n, why = T.auto_threads(current, usable, processes, env)
    assert n == expected
    assert why.startswith(f"{expected}: ")


def test_apply_sets_an_explicit_count_and_records_auto_with_the_quota(monkeypatch):
    before = torch.get_num_threads()
    try:
        cfg = TrainConfig(cpu_threads=1)
        cfg.validate()
        assert T.apply_cpu_threads(cfg) == 1 and torch.get_num_threads() == 1
        assert cfg.auto.cpu_threads == ""
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        monkeypatch.setattr(T, "cgroup_cpu_limit", lambda: 1.0)
        monkeypatch.setattr(T, "usable_cores", lambda limit: int(limit))
        torch.set_num_threads(2)
        cfg = TrainConfig()
        assert T.apply_cpu_threads(cfg, processes=1) == 1 and torch.get_num_threads() == 1
        assert cfg.auto.cpu_threads == "auto -> 1: PyTorch's 2 lowered to 1 usable CPUs (cgroup CPU quota 1)"
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("bad", [0, -2, "two", True, 1.5])
def test_bad_thread_counts_are_refused_in_one_line(bad):
    with pytest.raises(DifairError, match="cpu_threads must be a whole number >= 1 or auto"):
        TrainConfig(cpu_threads=bad).validate()


def test_threads_are_not_part_of_the_digest():
    assert TrainConfig(cpu_threads=3).digest() == TrainConfig().digest()
    cfg = TrainConfig()
    cfg.auto.cpu_threads = "auto -> 1: whatever"
    assert cfg.digest() == TrainConfig().digest()
