"""One process trains a run folder at a time; the lock of a killed process is not stale."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from difair.engine import rundir as R
from difair.errors import DifairError

HOLD = """
import sys, time
from pathlib import Path
from difair.engine import rundir as R
with R.run_lock(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(60)
"""


def _holder(run_dir: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_process_is_refused_while_the_first_holds_the_lock(tmp_path: Path):
    run = tmp_path / "run"
    proc = _holder(run)
    try:
        with (
            pytest.raises(DifairError, match=rf"is being trained by process {proc.pid} on ") as err,
            R.run_lock(run),
        ):
            pass
        assert "\n" not in str(err.value)
    finally:
        proc.kill()
        proc.wait()
    # killed: the kernel released its lock, so it is not stale
    with R.run_lock(run):
        assert str(os.getpid()) in (run / R.LOCK).read_text()


def test_the_lock_is_released_after_the_block_and_on_errors(tmp_path: Path):
    run = tmp_path / "run"
    with pytest.raises(RuntimeError), R.run_lock(run):
        raise RuntimeError("boom")
    with R.run_lock(run):
        pass
    t0 = time.perf_counter()
    with R.run_lock(run):
        pass
    assert time.perf_counter() - t0 < 5  # never waits: refusing is the job of a held lock


def test_stale_temp_files_of_a_killed_write_are_removed(tmp_path: Path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    R.save_checkpoint(run / R.CHECKPOINT, {"model": {}, "epoch": 0, "config_digest": "x"})
    stale = [run / "checkpoints" / ".last.pt.abc123.tmp", run / ".results.json.x1.tmp"]
    for p in stale:
        p.write_bytes(b"half")
    keep = run / "notes.tmp"  # not one of difair's temp names
    keep.write_text("mine")
    assert sorted(R.remove_stale_temps(run)) == sorted(stale)
    assert not any(p.exists() for p in stale) and keep.exists() and (run / R.CHECKPOINT).is_file()
