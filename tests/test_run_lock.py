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
            pytest.raises(DifairError, match=rf"is in use by process {proc.pid} on ") as err,
            R.run_lock(run),
        ):
            pass
        assert "\n" not in str(err.value)
    finally:
        proc.kill()
        proc.wait()
    # killed: the kernel released its lock, so it is not stale
    assert (run / R.LOCK).exists()  # the file of the killed holder stays behind, unheld
    with R.run_lock(run):
        assert str(os.getpid()) in (run / R.LOCK).read_text()
    assert not (run / R.LOCK).exists()  # a finished holder removes it


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
    (run / R.FEATURES).mkdir()
    R.save_checkpoint(run / R.CHECKPOINT, {"model": {}, "epoch": 0, "config_digest": "x"})
    stale = [
        run / "checkpoints" / ".last.pt.abc123.tmp",
        run / ".results.json.x1.tmp",
        run / R.FEATURES / ".outputs-test.pt.k2.tmp",  # a killed analysis
    ]
    for p in stale:
        p.write_bytes(b"half")
    keep = run / "notes.tmp"  # not one of difair's temp names
    keep.write_text("mine")
    assert sorted(R.remove_stale_temps(run)) == sorted(stale)
    assert not any(p.exists() for p in stale) and keep.exists() and (run / R.CHECKPOINT).is_file()


def test_two_trainings_of_one_folder_the_second_is_refused(tmp_path: Path, capsys):
    from difair.cli import main
    from tiny import tiny_overrides

    out = tmp_path / "run"
    sets = [a for o in tiny_overrides("ce", 500) for a in ("--set", o)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "difair.cli", "train", "--quiet", "--out", str(out), *sets],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 120
        while not (out / R.METRICS).is_file() and time.time() < deadline:  # training, past its first epoch
            time.sleep(0.2)
        assert (out / R.METRICS).is_file()
        before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != R.LOCK}
        capsys.readouterr()
        for argv in (
            ["train", "--quiet", "--resume", str(out)],
            ["train", "--quiet", "--out", str(out), "--overwrite", *sets],
        ):
            assert main(argv) == 2
            err = capsys.readouterr().err.strip()
            assert len(err.splitlines()) == 1 and f"is in use by process {proc.pid}" in err
        assert (out / R.CONFIG).read_bytes() == before[R.CONFIG]  # nothing replaced
    finally:
        proc.kill()
        proc.wait()
    # the killed process left its lock behind on disk, but not held: the run resumes
    assert (out / R.LOCK).exists()


def test_a_failed_start_leaves_no_folder(tmp_path: Path):
    from difair.cli import main
    from tiny import tiny_overrides

    out = tmp_path / "new"
    sets = [a for o in tiny_overrides("ce", 1, ["data.name=folder:/nonexistent"]) for a in ("--set", o)]
    assert main(["train", "--quiet", "--out", str(out), *sets]) == 2
    assert not out.exists()


def test_eval_of_a_path_that_is_no_run_creates_nothing(tmp_path: Path, capsys) -> None:
    from difair.cli import main

    missing = tmp_path / "nope" / "x" / "y"
    assert main(["eval", str(missing)]) == 2
    assert "is not a difair run folder (no config.yaml)" in capsys.readouterr().err
    assert not (tmp_path / "nope").exists()  # the lock once made the folder and its parents


def test_a_failed_start_leaves_a_sibling_started_meanwhile_in_a_new_parent(tmp_path: Path, monkeypatch):
    # x and y start at once in a new parent; x fails: its clean-up once removed the whole parent, y's lock and all
    import importlib

    from difair.errors import DifairError

    fit_mod = importlib.import_module("difair.engine.fit")
    parent = tmp_path / "newp"

    def sibling_starts_then_fail(*_a, **_k):
        (parent / "y").mkdir(parents=True)
        (parent / "y" / ".lock").write_text("4242")  # y holds its lock, nothing written yet
        raise DifairError("x's config is bad")

    monkeypatch.setattr(fit_mod, "_fit_locked", sibling_starts_then_fail)
    with pytest.raises(DifairError, match="x's config is bad"):
        fit_mod.fit(None, parent / "x")
    assert not (parent / "x").exists() and (parent / "y" / ".lock").read_text() == "4242"
    (parent / "y" / ".lock").unlink()
    (parent / "y").rmdir()

    def fail(*_a, **_k):
        raise DifairError("x's config is bad")

    monkeypatch.setattr(fit_mod, "_fit_locked", fail)
    with pytest.raises(DifairError, match="x's config is bad"):
        fit_mod.fit(None, tmp_path / "a" / "b" / "x")
    assert not (tmp_path / "a").exists()  # alone, every folder it created goes
