"""cpu_threads=auto: the cgroup CPU quota read from v1 and v2 trees, the usable CPUs, the thread rule, the record."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from difair.config import TrainConfig
from difair.cpus import cgroup_cpu_limit, cores_within_quota
from difair.engine import threads as T
from difair.errors import DifairError
from tiny import tiny_config


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


def test_cgroup_v1_hierarchy_named_by_its_controllers_and_paths_outside_the_namespace(tmp_path: Path):
    root, proc = tmp_path / "cg", tmp_path / "proc-cgroup"
    _write(proc, "3:cpuset,cpu,cpuacct:/job\n")  # a hierarchy mounted under its full controller list
    _write(root / "cpuset,cpu,cpuacct/job/cpu.cfs_quota_us", "50000\n")
    _write(root / "cpuset,cpu,cpuacct/job/cpu.cfs_period_us", "100000\n")
    assert cgroup_cpu_limit(proc, root) == pytest.approx(0.5)
    _write(proc, "3:cpuset,cpu,cpuacct:/../../job\n")  # outside this cgroup namespace: not joined under root
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
    assert cores_within_quota(affinity, limit) == expected


@pytest.mark.parametrize(
    ("baseline", "usable", "devices", "workers", "env", "expected"),
    [
        (2, 2, 1, 1, {}, 2),  # PyTorch's count fits: kept
        (64, 2, 1, 1, {}, 2),  # a 2-CPU quota on a 64-core host: lowered
        (2, 2, 2, 1, {}, 1),  # two DDP processes on 2 CPUs: one thread each
        (2, 2, 1, 2, {}, 1),  # two pool workers alike
        (8, 8, 2, 2, {}, 2),  # two workers running a 2-device run each: 4 processes
        (4, 3, 2, 1, {}, 1),  # shares round down, never below 1
        (1, 1, 4, 1, {}, 1),
        (8, 2, 1, 1, {"OMP_NUM_THREADS": "8"}, 8),  # the environment wins: the count PyTorch took from it
        (8, 2, 1, 4, {"OMP_NUM_THREADS": "8"}, 2),  # ... divided among a pool's workers
        (8, 2, 1, 1, {"OMP_NUM_THREADS": " "}, 2),  # an empty setting is no setting
    ],
)
def test_auto_thread_rule(baseline, usable, devices, workers, env, expected):
    n, why = T.auto_threads(baseline, usable, devices, workers, env)
    assert n == expected
    assert why.startswith(f"{expected}: ")
    assert (f"/ {workers} workers" in why) == (workers > 1)


@pytest.fixture
def two_cpus_one_quota(monkeypatch):
    """PyTorch started with 2 threads on 2 CPUs under a 1-CPU quota; the process's count is restored after."""
    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(T, "PYTORCH_THREADS", 2)
    monkeypatch.setattr(T, "affinity_cores", lambda: 2)
    monkeypatch.setattr(T, "cgroup_cpu_limit", lambda: 1.0)
    yield monkeypatch
    torch.set_num_threads(before)


def test_apply_sets_an_explicit_count_and_auto_starts_from_pytorchs_count(two_cpus_one_quota):
    cfg = TrainConfig(cpu_threads=3)
    assert T.apply_cpu_threads(cfg) == 3 and torch.get_num_threads() == 3
    assert cfg.auto.cpu_threads == ""
    cfg = TrainConfig()  # after an explicit run in the same process: auto is not stuck at that run's 3
    assert T.apply_cpu_threads(cfg) == 1 and torch.get_num_threads() == 1
    assert cfg.auto.cpu_threads == "auto -> 1: PyTorch's 2 lowered to 1 usable CPUs (cgroup CPU quota 1)"
    two_cpus_one_quota.setattr(
        T, "cgroup_cpu_limit", lambda: None
    )  # no quota: PyTorch's 2 again, not the 1 left
    cfg = TrainConfig()
    assert T.apply_cpu_threads(cfg) == 2 and torch.get_num_threads() == 2
    assert cfg.auto.cpu_threads == "auto -> 2: PyTorch's count, within 2 usable CPUs"
    assert "OMP_NUM_THREADS" not in os.environ  # a run in one process leaves the environment alone


def test_ddp_ranks_inherit_the_count_through_the_launch_only(two_cpus_one_quota):
    from lightning_fabric.utilities.distributed import _set_num_threads_if_needed

    two_cpus_one_quota.setattr(T, "cgroup_cpu_limit", lambda: None)
    cfg = TrainConfig(devices=2)
    n = T.apply_cpu_threads(cfg)
    assert n == 1 and cfg.auto.cpu_threads == "auto -> 1: PyTorch's 2 lowered to 2 usable CPUs / 2 processes"
    with T.ranks_inherit(n):
        assert os.environ["OMP_NUM_THREADS"] == "1"  # what the launched ranks inherit
        _set_num_threads_if_needed(num_processes=1)  # Fabric's launcher, which alone would set 2 here
        assert torch.get_num_threads() == 1
    assert "OMP_NUM_THREADS" not in os.environ  # gone after the launch: a later run is not stuck at 1
    two_cpus_one_quota.setenv("OMP_NUM_THREADS", "3")
    with T.ranks_inherit(1):
        assert os.environ["OMP_NUM_THREADS"] == "3"  # the user's setting is theirs
    assert os.environ["OMP_NUM_THREADS"] == "3"


def test_applying_again_gives_the_same_count(two_cpus_one_quota):
    """A pool worker applies the rule before its data loads and fit applies it again: no second division."""
    two_cpus_one_quota.setattr(T, "PYTORCH_THREADS", 8)  # PyTorch took 8 from the environment
    two_cpus_one_quota.setenv("OMP_NUM_THREADS", "8")
    counts = [T.apply_cpu_threads(TrainConfig(), workers=4) for _ in range(2)]
    assert counts == [2, 2] and torch.get_num_threads() == 2


def test_pool_workers_share_the_cpus(two_cpus_one_quota):
    two_cpus_one_quota.setattr(T, "cgroup_cpu_limit", lambda: None)
    cfg = TrainConfig()
    assert T.apply_cpu_threads(cfg, workers=2) == 1
    assert cfg.auto.cpu_threads == "auto -> 1: PyTorch's 2 lowered to 2 usable CPUs / 2 workers"


@pytest.mark.parametrize(
    ("affinity", "limit", "devices", "workers", "expected"),
    [
        (16, None, 1, 1, 8),  # one process: a decoder per CPU but one, at most 8
        (4, None, 1, 1, 3),
        (8, None, 1, 2, 3),  # two pool workers: 4 CPUs each, 3 decoders each (not 7 each on 8 CPUs)
        (8, None, 2, 1, 3),  # a 2-device run: each rank alike
        (8, None, 2, 2, 1),
        (64, 2.0, 1, 1, 1),  # a 2-CPU quota on a 64-core host
        (2, None, 1, 2, 0),  # a CPU each: decode in the loop
    ],
)
def test_stream_decoders_come_from_the_process_share(affinity, limit, devices, workers, expected):
    cfg = TrainConfig(devices=devices)
    data = T.process_data(cfg, workers, cpus=(affinity, limit))
    assert data.workers == expected
    assert cfg.data.workers is None  # the run's config keeps the request: the count belongs to the machine
    assert T.process_cpus(cfg, workers, cpus=(affinity, limit)) == max(
        1, cores_within_quota(affinity, limit) // (devices * workers)
    )
    cfg.data.workers = 5  # an explicit count is the user's, per process
    assert T.process_data(cfg, workers, cpus=(affinity, limit)).workers == 5


def test_runs_and_pool_workers_load_their_data_with_their_share(two_cpus_one_quota):
    from difair.engine import build

    seen = []
    two_cpus_one_quota.setattr(T, "affinity_cores", lambda: 8)
    two_cpus_one_quota.setattr(T, "cgroup_cpu_limit", lambda: None)
    two_cpus_one_quota.setattr(build, "get_dataset", lambda data_cfg: seen.append(data_cfg.workers) or "data")
    assert build.load_data(TrainConfig(), None, workers=2) == "data"
    assert build.load_data(TrainConfig(), "given") == "given"  # loaded by the caller: untouched
    assert seen == [3]


@pytest.mark.parametrize("bad", [0, -2, "two", True, 1.5])
def test_bad_thread_counts_are_refused_in_one_line(bad):
    with pytest.raises(DifairError, match="cpu_threads must be a whole number >= 1 or auto"):
        TrainConfig(cpu_threads=bad).validate()


def test_threads_are_not_part_of_the_digest():
    assert TrainConfig(cpu_threads=3).digest() == TrainConfig().digest()
    cfg = TrainConfig()
    cfg.auto.cpu_threads = "auto -> 1: whatever"
    assert cfg.digest() == TrainConfig().digest()


def test_train_and_eval_record_the_count_they_computed_with(tmp_path: Path):
    from difair.engine.evaluate import evaluate_run_dir
    from difair.engine.fit import fit

    before = torch.get_num_threads()
    try:
        results = fit(tiny_config(epochs=1, extra=["cpu_threads=2"]), tmp_path / "run", show_progress=False)
        assert results["environment"]["auto"]["cpu_threads"] == {"requested": 2, "resolved": 2}
        torch.set_num_threads(1)  # eval in a process that computes with another count uses the run's ...
        results = evaluate_run_dir(tmp_path / "run")
        assert results["environment"]["auto"]["cpu_threads"] == {"requested": 2, "resolved": 2}
        assert torch.get_num_threads() == 1  # ... and gives the caller's back
        assert (
            json.loads((tmp_path / "run" / "results.json").read_text())["environment"]["auto"]["cpu_threads"][
                "resolved"
            ]
            == 2
        )
    finally:
        torch.set_num_threads(before)
