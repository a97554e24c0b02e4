"""Issue 11, case 1: ``--overwrite`` replaces only a difair run folder, and only once the new run's first checkpoint
is written; every failure before that leaves the old folder byte-identical and nothing beside it."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from difair.cli import main
from difair.engine import rundir as R
from difair.engine import staging
from difair.engine.fit import fit
from difair.errors import DifairError
from tiny import tiny_config, tiny_overrides

pytestmark = pytest.mark.slow


def _sets(extra: list[str] | None = None) -> list[str]:
    return [a for o in tiny_overrides("difair", 1, extra) for a in ("--set", o)]


def _tree(folder: Path) -> dict[str, str]:
    """Every file and folder below ``folder`` (the run lock aside): path -> sha256 of its bytes, or "dir"."""
    return {
        str(p.relative_to(folder)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.name != R.LOCK
    }


def _one_line(capsys, code: int, *fragments: str) -> str:
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("difair: error: ") and "Traceback" not in err, err
    for f in fragments:
        assert f in err, err
    return err


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("finished") / "run"
    assert main(["train", "--quiet", "--out", str(out), *_sets()]) == 0
    return out


@pytest.fixture
def run(finished: Path, tmp_path: Path) -> Path:
    """A copy of a finished run, alone in its parent folder."""
    out = tmp_path / "parent" / "run"
    shutil.copytree(finished, out)
    return out


@pytest.mark.parametrize(
    "bad, fragment",
    [
        ("difair.head_kernel_size=0", "difair.head_kernel_size must be an odd number"),
        ("model.backbone=timm:nothing", "nothing"),
    ],
)
def test_a_failed_overwrite_of_a_finished_run_loses_nothing(run: Path, capsys, bad: str, fragment: str):
    before, beside = _tree(run), sorted(p.name for p in run.parent.iterdir())
    capsys.readouterr()
    code = main(["train", "--out", str(run), "--overwrite", "--set", bad, "--quiet", *_sets()])
    _one_line(capsys, code, fragment)
    assert _tree(run) == before
    assert sorted(p.name for p in run.parent.iterdir()) == beside  # no staged folder left beside it


def test_overwrite_refuses_a_folder_difair_did_not_mark(run: Path, tmp_path: Path, capsys):
    foreign = tmp_path / "theirs"
    (foreign / "checkpoints").mkdir(parents=True)
    shutil.copy(run / R.CONFIG, foreign / R.CONFIG)  # even a config difair reads
    (foreign / "checkpoints" / "model_best.pt").write_bytes(b"their weights")
    (foreign / R.RESULTS).write_text('{"their": "results"}\n')
    before = _tree(foreign)
    code = main(["train", "--quiet", "--out", str(foreign), "--overwrite", *_sets()])
    _one_line(capsys, code, "not a difair run folder", staging.MARKER, "choose another --out", "delete")
    assert _tree(foreign) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["parent", "theirs"]


def test_a_successful_overwrite_leaves_exactly_the_new_run(run: Path):
    (run / "notes.txt").write_text("in a marked run folder: replaced with it")
    old_results = (run / R.RESULTS).read_bytes()
    assert main(["train", "--quiet", "--out", str(run), "--overwrite", *_sets(["seed=7"])]) == 0
    assert set(_tree(run)) == {
        staging.MARKER, R.CONFIG, R.METRICS, R.RESULTS, "checkpoints", R.CHECKPOINT
    }  # fmt: skip
    assert (run / R.RESULTS).read_bytes() != old_results and R.read_run_config(run).seed == 7
    assert staging.has_marker(run)
    assert [p.name for p in run.parent.iterdir()] == ["run"]  # the old folder and the stage are gone


def test_nothing_is_replaced_before_the_first_checkpoint_is_written(run: Path, monkeypatch):
    before, beside = _tree(run), sorted(p.name for p in run.parent.iterdir())

    def fail(path, state):
        assert run not in Path(path).parents  # the new run is written beside the old one, never into it
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(R, "save_checkpoint", fail)
    with pytest.raises(OSError, match="No space"):
        fit(tiny_config("difair", 1, ["seed=5"]), run, overwrite=True, show_progress=False)
    assert _tree(run) == before
    assert sorted(p.name for p in run.parent.iterdir()) == beside


def test_the_swap_without_renameat2_also_replaces_the_run(run: Path, monkeypatch):
    monkeypatch.setattr(staging, "_exchange_atomically", lambda a, b: False)
    fit(tiny_config("difair", 1, ["seed=3"]), run, overwrite=True, show_progress=False)
    assert R.read_run_config(run).seed == 3 and staging.has_marker(run)
    assert [p.name for p in run.parent.iterdir()] == ["run"]


def test_a_failed_swap_leaves_the_old_run(run: Path, monkeypatch):
    before = _tree(run)

    def refuse(a, b):
        raise OSError(13, "Permission denied", str(b))

    monkeypatch.setattr(staging, "exchange", refuse)
    with pytest.raises(DifairError, match="the old run is unchanged"):
        fit(tiny_config("difair", 1, ["seed=3"]), run, overwrite=True, show_progress=False)
    assert _tree(run) == before
    assert [p.name for p in run.parent.iterdir()] == ["run"]


def test_runs_of_earlier_versions_are_recognised_by_their_layout(run: Path, capsys):
    (run / staging.MARKER).unlink()  # as difair <= 0.1.0 wrote it
    assert staging.legacy_run(run)
    (run / "thesis.tex").write_text("precious")  # but not with a file difair never wrote
    assert not staging.legacy_run(run)
    code = main(["train", "--quiet", "--out", str(run), "--overwrite", *_sets()])
    _one_line(capsys, code, "not a difair run folder")
    assert (run / "thesis.tex").read_text() == "precious"
    (run / "thesis.tex").unlink()
    assert main(["train", "--quiet", "--out", str(run), "--overwrite", *_sets(["seed=2"])]) == 0
    assert R.read_run_config(run).seed == 2 and staging.has_marker(run)


def test_a_stage_left_by_a_killed_start_is_removed(run: Path):
    stale = run.parent / ".run.difair-new-abcd1234"
    (stale / "checkpoints").mkdir(parents=True)
    (stale / R.CONFIG).write_text("half a start")
    other = run.parent / ".other.difair-new-abcd1234"  # another run's: not ours to remove
    other.mkdir()
    fit(None, run, resume=True, show_progress=False)
    assert not stale.exists() and other.exists()


def test_a_resumed_run_is_written_in_place(run: Path):
    inode = run.stat().st_ino
    assert fit(None, run, resume=True, show_progress=False)["checkpoint"]["complete"]
    assert run.stat().st_ino == inode


def test_a_run_folder_has_the_mode_a_plain_mkdir_gives(finished: Path) -> None:
    import os

    umask = os.umask(0)
    os.umask(umask)
    assert finished.stat().st_mode & 0o777 == 0o777 & ~umask  # not mkdtemp's private 0700
    assert (finished / R.RESULTS).stat().st_mode & 0o777 == 0o666 & ~umask
