"""Issue 11, item 9: a resumed run reports the training time of all its sessions, and epochs are counted the same
way (from 1, "epoch 3/10") in messages and metrics.jsonl, also across a resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from difair.engine import rundir as R
from difair.engine.evaluate import evaluate_run_dir
from difair.engine.fit import fit
from tiny import tiny_config

pytestmark = pytest.mark.slow


def _stop_after(epoch: int):
    def stop(row: dict) -> None:
        if row["epoch"] == epoch:
            raise KeyboardInterrupt  # as if killed right after the epoch's checkpoint

    return stop


def test_train_time_counts_every_session(tmp_path: Path):
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_config("ce", 2), run, show_progress=False, on_epoch=_stop_after(1))
    first = R.load_checkpoint(run / R.CHECKPOINT)["train_time_s"]
    assert first > 0
    results = fit(None, run, resume=True, show_progress=False)
    rows = R.read_metrics(run)
    assert [(r["epoch"], r["epochs"]) for r in rows] == [(1, 2), (2, 2)]
    assert results["train_time_s"] >= round(first + rows[1]["epoch_time_s"], 2) - 0.01  # both sessions
    # resuming the finished run trains nothing and keeps the total (it said 0.0)
    assert fit(None, run, resume=True, show_progress=False)["train_time_s"] == results["train_time_s"]
    (run / R.RESULTS).unlink()  # eval reads it from the checkpoint, not from the results.json it replaces
    assert evaluate_run_dir(run)["train_time_s"] == results["train_time_s"]


def test_a_checkpoint_without_train_time_resumes_with_the_logged_epoch_times(tmp_path: Path):
    run = tmp_path / "run"
    fit(tiny_config("ce", 1), run, show_progress=False)
    state = torch.load(run / R.CHECKPOINT, weights_only=True)
    del state["train_time_s"]  # as difair 0.1.0 wrote it
    torch.save(state, run / R.CHECKPOINT)
    logged = sum(r["epoch_time_s"] for r in R.read_metrics(run))
    assert fit(None, run, resume=True, show_progress=False)["train_time_s"] == round(logged, 2)


def _write_rows(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_truncate_metrics_keeps_the_epochs_the_checkpoint_holds_in_either_numbering(tmp_path: Path):
    path = tmp_path / R.METRICS
    _write_rows(path, [{"epoch": e, "epochs": 3} for e in (1, 2, 3)])
    R.truncate_metrics(tmp_path, 2)
    assert [r["epoch"] for r in R.read_metrics(tmp_path)] == [1, 2]
    _write_rows(path, [{"epoch": e} for e in (0, 1, 2)])  # difair <= 0.1.0 counted from 0
    R.truncate_metrics(tmp_path, 2)
    assert [r["epoch"] for r in R.read_metrics(tmp_path)] == [0, 1]
    path.write_text(
        '{"epoch": 1, "epochs": 2}\n{"epoch": "x"}\n[1]\n{"epoch": 2, "ep'
    )  # edited and torn lines
    R.truncate_metrics(tmp_path, 2)
    assert path.read_text() == '{"epoch": 1, "epochs": 2}\n'


def test_a_metrics_file_that_needs_no_change_is_not_rewritten(tmp_path: Path):
    path = tmp_path / R.METRICS
    _write_rows(path, [{"epoch": 1, "epochs": 1}])
    inode = path.stat().st_ino
    R.truncate_metrics(tmp_path, 1)
    assert path.stat().st_ino == inode  # an atomic rewrite would have replaced the file


def test_a_resume_with_another_thread_count_says_its_result_will_differ(tmp_path: Path):
    # the count changes how sums round: resumed at another count, a run cannot end where an uninterrupted one would
    import warnings

    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_config("ce", 2), run, show_progress=False, on_epoch=_stop_after(1))
    state = R.load_checkpoint(run / R.CHECKPOINT)
    assert state["cpu_threads"] == torch.get_num_threads()  # recorded by the session that trained it
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same count: no warning
        fit(None, run, resume=True, show_progress=False)
    state["cpu_threads"], state["epoch"] = torch.get_num_threads() + 3, 0
    R.save_checkpoint(run / R.CHECKPOINT, state)
    with pytest.warns(
        UserWarning, match=rf"trained its first 1 epochs with {state['cpu_threads']} CPU threads and "
    ):
        fit(None, run, resume=True, show_progress=False)


def test_a_resume_without_a_checkpoint_says_it_starts_again(tmp_path: Path):
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_config("ce", 2), run, show_progress=False, on_epoch=_stop_after(1))
    (run / R.CHECKPOINT).unlink()  # metrics.jsonl still logs epoch 1
    with pytest.warns(
        UserWarning, match=r"holds no checkpoint \(checkpoints/last.pt\) of the epochs its metrics log"
    ):
        fit(None, run, resume=True, show_progress=False)
    assert [r["epoch"] for r in R.read_metrics(run)] == [1, 2]


def test_the_unfinished_note_fits_what_the_run_is_doing(tmp_path: Path):
    from difair.cliutil import unfinished_note

    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_config("ce", 2), run, show_progress=False, on_epoch=_stop_after(1))
    assert "finish it with difair train --resume" in unfinished_note(run)
    with R.run_lock(run):  # training now: resuming is not the advice
        note = unfinished_note(run)
    assert (
        "is in use by another process (its checkpoint holds epoch 1 of 2)" in note and "--resume" not in note
    )
    state = R.load_checkpoint(run / R.CHECKPOINT)
    state["config_digest"] = "0" * 16  # another config's checkpoint: the command refuses it, no note before
    R.save_checkpoint(run / R.CHECKPOINT, state)
    assert unfinished_note(run) is None
