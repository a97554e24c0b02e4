"""Parallel runs give the same results as sequential ones, reuse finished runs, and keep the jobs' order."""

from __future__ import annotations

from pathlib import Path

from difair.engine.pool import Job, run_jobs
from difair.engine.runner import run_or_resume
from tiny import tiny_config


def test_parallel_runs_match_sequential_and_are_reused(tmp_path: Path) -> None:
    cfgs = [tiny_config("difair", 2), tiny_config("ce", 2), tiny_config("cac", 2, ["data.split=1"])]
    jobs = [Job(c, tmp_path / "par" / f"r{i}") for i, c in enumerate(cfgs)]
    parallel = run_jobs(jobs, workers=2, show_progress=True)
    assert [how for _, how in parallel] == ["trained"] * 3
    assert [r["method"] for r, _ in parallel] == ["difair", "ce", "cac"]
    for r, _ in parallel:  # each worker computed with its share of the CPUs (or the environment's, divided)
        assert "/ 2 workers" in r["environment"]["auto"]["cpu_threads"]["why"]
    for i, cfg in enumerate(cfgs):
        seq, _ = run_or_resume(cfg, tmp_path / "seq" / f"r{i}", show_progress=False)
        assert seq["scores"] == parallel[i][0]["scores"]
    again = run_jobs(jobs, workers=2, show_progress=False)
    assert [how for _, how in again] == ["reused"] * 3
