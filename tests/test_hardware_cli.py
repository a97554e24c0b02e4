"""difair hardware: the report agrees with the rules a run applies, changes nothing, and works without data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from difair.cli import main
from difair.cpus import usable_cores
from difair.engine import execution as X
from difair.engine.hardware import auto_precision, device_info


def _report(capsys, *argv: str) -> dict:
    # on the CPU, also where a GPU is present: the probe, threads and peaks are CPU rules
    assert main(["hardware", "--json", "--set", "accelerator=cpu", *argv]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DIFAIR_CACHE", str(tmp_path / "cache"))  # no verdict of this machine leaks in or out


def test_the_report_gives_the_runs_own_choices_and_leaves_the_process_alone(capsys):
    before = torch.get_num_threads()
    r = _report(capsys)
    assert torch.get_num_threads() == before
    assert r["precision"]["requested"] == "auto"  # --fast's request ...
    assert r["precision"]["resolved"] == auto_precision(device_info("cpu"))[0]  # ... and the device's rule
    assert r["cpus"]["usable"] == usable_cores()
    assert 1 <= r["cpu_threads"]["resolved"] <= r["cpus"]["usable"]
    assert r["workload"] == {
        "method": "difair", "backbone": "vgg32", "dataset": "digits", "batch_size": 128, "input": [1, 16, 16],
        "classes": 6,
    }  # fmt: skip
    # nothing cached yet and no --probe: the verdict is left to the run
    assert r["channels_last"]["resolved"] is None and "--probe" in r["channels_last"]["why"]
    assert r["vector_isa"].startswith("unknown") or r["peak_gflops"]["32-true"]["gflops"] > 0
    assert r["cpu_allocator"]["requested"] == "retain"  # --fast's; resolved by the allocator's own rule
    assert r["cpu_allocator"]["resolved"] in ("retain", "system")


def test_probe_times_once_then_the_cached_verdict_is_reported(capsys, monkeypatch):
    calls = []

    def fake_timer(cfg, shape, classes):
        calls.append((cfg.precision, shape, classes, torch.get_num_threads()))
        return {False: [0.2, 0.2, 0.2], True: [0.1, 0.1, 0.1]}

    monkeypatch.setattr(X, "time_training_steps", fake_timer)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("difair.engine.threads.PYTORCH_THREADS", 2)  # PyTorch started with 2 threads ...
    monkeypatch.setattr("difair.engine.machine.cgroup_cpu_limit", lambda: 1.0)  # ... under a 1-CPU quota
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        r = _report(capsys, "--probe", "--set", "precision=32-true")
        assert torch.get_num_threads() == 2  # restored after the probe
    finally:
        torch.set_num_threads(before)
    assert calls == [
        ("32-true", (1, 16, 16), 6, 1)
    ]  # timed at the run's thread count (1, not 2), as a run would
    assert (
        r["channels_last"]["resolved"] is True
        and "100.0 ms vs contiguous 200.0 ms" in r["channels_last"]["why"]
    )
    r = _report(capsys, "--set", "precision=32-true")
    assert len(calls) == 1 and r["channels_last"]["resolved"] is True
    assert r["channels_last"]["why"].endswith("(cached)")


def test_explicit_values_and_a_cgroup_quota(capsys, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("difair.engine.threads.PYTORCH_THREADS", 2)  # PyTorch started with 2 threads ...
    monkeypatch.setattr("difair.engine.machine.affinity_cores", lambda: 2)  # ... on 2 CPUs ...
    monkeypatch.setattr("difair.engine.machine.cgroup_cpu_limit", lambda: 1.0)  # ... under a 1-CPU quota
    r = _report(capsys, "--set", "channels_last=false")
    assert r["cpus"] == {"affinity": 2, "cgroup_cpu_limit": 1.0, "usable": 1}
    assert r["cpu_threads"]["resolved"] == 1
    assert r["cpu_threads"]["why"] == "auto -> 1: PyTorch's 2 lowered to 1 usable CPUs (cgroup CPU quota 1)"
    assert r["channels_last"] == {"requested": False, "resolved": False, "why": "set explicitly"}
    r = _report(
        capsys, "--set", "cpu_threads=3", "--set", "precision=bf16-true", "--set", "cpu_allocator=system"
    )
    assert r["cpu_threads"]["resolved"] == 3 and r["precision"]["resolved"] == "bf16-true"
    assert r["cpu_allocator"]["resolved"] == "system"


def test_the_peak_counts_the_threads_the_run_computes_on(capsys, monkeypatch):
    from difair.engine.hardware import cpu_peak_gflops

    monkeypatch.setattr("difair.engine.hardware.cpu_capacity", lambda: 2.0)
    if cpu_peak_gflops("32-true", cores=1) is None:
        pytest.skip("no vector ISA read on this machine: no peak to count")
    one = _report(capsys, "--set", "cpu_threads=1", "--set", "channels_last=false")["peak_gflops"]["32-true"]
    assert one["gflops"] == round(cpu_peak_gflops("32-true", cores=1)[0], 1) and one["how"].startswith(
        "1 core x"
    )
    two = _report(capsys, "--set", "cpu_threads=4", "--set", "channels_last=false")["peak_gflops"]["32-true"]
    assert two["gflops"] == round(cpu_peak_gflops("32-true", cores=2)[0], 1)  # at most the CPUs it may use


def test_a_device_that_is_not_there_is_refused_in_one_line(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["hardware", "--set", "accelerator=cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no CUDA device" in err


def test_a_missing_dataset_still_reports_the_machine(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("DIFAIR_DATA", str(tmp_path / "empty"))
    r = _report(capsys, "--dataset", "svhn")
    assert r["workload"]["input"] is None and "svhn" in r["workload"]["data_missing"].lower()
    assert r["channels_last"]["resolved"] is None and "when it starts" in r["channels_last"]["why"]


def test_text_report_has_every_line_and_bad_input_is_one_line(capsys):
    assert main(["hardware"]) == 0
    out = capsys.readouterr().out
    for label in ("machine", "cpus", "vector isa", "workload", "precision", "threads", "channels_last"):
        assert any(line.startswith(label) for line in out.splitlines()), label
    assert main(["hardware", "--set", "cpu_threads=0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cpu_threads must be a whole number >= 1 or auto" in err
