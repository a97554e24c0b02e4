"""Concurrency, full disks and damaged files met by a user (the stress test of issue 9's session): each one line
or handled, and no process destroys another's work."""

from __future__ import annotations

import errno
import importlib
import json
import shutil
from pathlib import Path

import pytest
import torch

from difair.data import cache as cache_mod
from difair.engine import rundir as R
from difair.engine import staging
from difair.engine.evaluate import evaluate_run_dir
from difair.engine.load import load_run
from difair.errors import DifairError
from difair.predict import THRESHOLD_FILE, Predictor, calibrate, read_calibration
from tiny import tiny_config
from viz_runs import digits_run

fit_mod = importlib.import_module("difair.engine.fit")  # the module; difair.engine.fit is also the function


@pytest.fixture
def run(tmp_path_factory, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(
        digits_run(tmp_path_factory, "difair"), out, ignore=shutil.ignore_patterns("threshold.json")
    )
    return out


def test_a_process_refused_the_lock_leaves_the_holders_folder(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "new"
    with R.run_lock(target):  # the first process, which created the folder and holds its lock
        monkeypatch.setattr(fit_mod, "_first_missing", lambda p: p)  # the second saw no folder when it began
        with pytest.raises(DifairError, match="is in use by"):
            fit_mod.fit(tiny_config(epochs=1), target, show_progress=False)
        assert (target / R.LOCK).is_file()  # not removed with "the folder this call created"


def test_a_live_stage_is_not_taken_for_a_killed_one(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    stage = tmp_path / f".run.{staging.NEW}-abcd1234"
    stage.mkdir()
    with R.run_lock(stage):  # a process is writing it
        assert staging.remove_stale_stages(run_dir) == [] and stage.is_dir()
    assert staging.remove_stale_stages(run_dir) == [stage] and not stage.exists()


def test_flipped_checkpoint_bytes_are_refused_not_loaded(run: Path) -> None:
    path = run / R.CHECKPOINT
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(b ^ 0xFF for b in data[middle : middle + 64])
    path.write_bytes(bytes(data))
    with pytest.raises(DifairError, match="is damaged .*fails its checksum"):
        load_run(run)


def test_a_calibration_carries_the_fingerprint_of_the_checkpoint_it_used(run: Path) -> None:
    loaded = load_run(run)
    (run / R.CHECKPOINT).write_bytes((run / R.CHECKPOINT).read_bytes() + b"")  # same bytes: same fingerprint
    state = R.load_checkpoint(run / R.CHECKPOINT)
    state["train_time_s"] = 1.0  # a newer checkpoint written while the outputs were computed
    R.save_checkpoint(run / R.CHECKPOINT, state)
    rec = calibrate(loaded, 0.95, device="cpu")
    assert rec["checkpoint"] == loaded.fingerprint != R.read_checkpoint(run / R.CHECKPOINT)[1]
    assert read_calibration(run) is None  # not valid for the checkpoint now in the folder


@pytest.mark.parametrize("bad", [float("nan"), "abc", None])
def test_a_damaged_threshold_record_is_recalibrated(run: Path, bad) -> None:
    rec = calibrate(run, 0.9, device="cpu")
    (run / THRESHOLD_FILE).write_text(json.dumps({**rec, "threshold": bad}))
    assert read_calibration(run) is None
    pr = Predictor(run, device="cpu")
    assert pr.calibrated_now and pr.threshold == pytest.approx(
        calibrate(run, 0.95, device="cpu")["threshold"]
    )


def test_a_threshold_that_cannot_be_stored_is_used_all_the_same(run: Path, monkeypatch) -> None:
    import difair.predict.predictor as P

    def read_only(*_a, **_k):
        raise DifairError(f"cannot write {run / THRESHOLD_FILE}: Read-only file system")

    monkeypatch.setattr(P, "store_calibration", read_only)
    pr = Predictor(run, device="cpu")
    assert pr.calibrated_now and not (run / THRESHOLD_FILE).exists()
    assert "used without storing it (cannot write" in pr.calibration_note()
    assert len(pr.predict(torch.zeros(2, 1, 8, 8, dtype=torch.uint8))) == 2


def test_eval_waits_for_no_training(run: Path) -> None:
    with R.run_lock(run), pytest.raises(DifairError, match="is in use by"):
        evaluate_run_dir(run)  # its results.json would overwrite the finished run's


def test_a_full_disk_is_one_line_for_checkpoints_and_caches(tmp_path: Path, monkeypatch) -> None:
    def full(*_a, **_k):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 5932416 vs 5932304")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(
        DifairError,
        match="cannot write checkpoint .*MiB free there.*run the same command again .*keeps its last",
    ):
        R.save_checkpoint(tmp_path / "last.pt", {"x": 1})
    assert list(tmp_path.iterdir()) == []  # no temp file left

    def no_space(*_a):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache_mod.os, "posix_fallocate", no_space)
    (tmp_path / "f.bin").write_bytes(b"\0" * 10)
    with pytest.raises(DifairError, match="no space for the decoded folder-train cache .*DIFAIR_CACHE_DIR"):
        cache_mod._reserve(tmp_path / "f.bin", "folder-train")


def test_a_damaged_outputs_cache_is_recomputed_and_a_read_only_folder_still_analyses(
    run: Path, monkeypatch
) -> None:
    from difair.data import get_dataset
    from difair.engine.feature_cache import FEATURES_DIR, cached_outputs

    loaded = load_run(run)
    images = get_dataset(loaded.config.data).test_images
    first = cached_outputs(loaded, "test", images, batch_size=256, device=torch.device("cpu"))
    path = run / FEATURES_DIR / "outputs-test.pt"
    saved = torch.load(path, weights_only=True)
    saved["tensors"]["outputs"] = saved["tensors"]["outputs"][:100]  # cut short, its key intact
    torch.save(saved, path)
    again = cached_outputs(loaded, "test", images, batch_size=256, device=torch.device("cpu"))
    torch.testing.assert_close(again, first)

    def read_only(*_a, **_k):
        raise DifairError("cannot write checkpoint: Read-only file system")

    path.unlink()
    monkeypatch.setattr(R, "save_checkpoint", read_only)
    torch.testing.assert_close(
        cached_outputs(loaded, "test", images, batch_size=256, device=torch.device("cpu")), first
    )


@pytest.mark.parametrize("epoch", [-4, 10])
def test_a_checkpoint_epoch_out_of_range_is_damage(run: Path, epoch: int) -> None:
    state = R.load_checkpoint(run / R.CHECKPOINT)
    state["epoch"] = epoch  # the run has 4 epochs: 0..3
    R.save_checkpoint(run / R.CHECKPOINT, state)
    with pytest.raises(DifairError, match="damaged .*epoch.* out of range"):
        load_run(run)


def test_a_results_record_without_its_fields_names_the_fix(run: Path) -> None:
    from difair.engine.runner import read_results

    results = json.loads((run / R.RESULTS).read_text())
    del results["scores"]
    (run / R.RESULTS).write_text(json.dumps(results))
    with pytest.raises(DifairError, match=f"no scores\\): difair eval {run} rewrites it"):
        read_results(run)


def _no_space(*_a, **_k):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_while_writing_a_record_names_the_file_and_keeps_the_old_one(tmp_path: Path, monkeypatch):
    target = tmp_path / "results.json"
    target.write_text("old")
    monkeypatch.setattr(
        R.os, "fsync", _no_space
    )  # a full disk shows at write or fsync, not at the temp's creation
    with pytest.raises(
        DifairError, match=r"no space left on the device of .* for writing .*results.json: free space"
    ):
        R.atomic_write_text(target, "new")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["results.json"]
    monkeypatch.setattr(R, "open", _no_space, raising=False)  # rundir's own open: metrics.jsonl's append
    with pytest.raises(
        DifairError, match=r"for writing .*metrics.jsonl: free space, then run the same command"
    ):
        R.append_metrics(tmp_path, {"epoch": 1})


def test_resuming_on_a_full_disk_is_refused_before_anything_is_touched(
    run: Path, monkeypatch, capsys
) -> None:
    from collections import namedtuple

    from difair.cli import main

    metrics = (run / R.METRICS).read_bytes()
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: usage(10**9, 10**9, 4096))
    assert main(["train", "--resume", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert (
        len(err.strip().splitlines()) == 1 and "no space left on the device of" in err and "MiB needed" in err
    )
    assert (run / R.METRICS).read_bytes() == metrics


def test_a_full_disk_in_another_library_is_one_line_without_a_permissions_hint() -> None:
    from difair.cli import describe_error

    text = describe_error(OSError(errno.ENOSPC, "No space left on device"))
    assert text == "no space left on the device: free space, then run the same command again"
    assert "permissions" in describe_error(OSError(errno.EACCES, "Permission denied", "/x"))


def test_a_tensorboard_session_that_wrote_nothing_leaves_no_empty_event_file(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from difair.engine.staging import InPlace
    from difair.engine.tensorboard import TENSORBOARD, TensorBoardLog

    folder = tmp_path / TENSORBOARD
    folder.mkdir()
    (folder / "events.out.tfevents.0.old").write_bytes(b"")  # not this session's: kept
    log = TensorBoardLog(InPlace(tmp_path), enabled=True)
    log._open()
    (folder / "events.out.tfevents.1.failed").write_bytes(b"")  # what a header write on a full disk leaves
    log.close()
    names = sorted(p.name for p in folder.iterdir())
    assert "events.out.tfevents.1.failed" not in names and "events.out.tfevents.0.old" in names
    assert len(names) == 2  # the session's own event file, which holds its header, stays
