"""TensorBoard logging (logging.tensorboard): event files equal to metrics.jsonl and results.json, rank 0 writes
after the staged commit, resume never duplicates steps, off writes nothing, a benchmark grid is one logdir."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("tensorboard")

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer  # noqa: E402

from difair.cli import main  # noqa: E402
from difair.config import TrainConfig  # noqa: E402
from difair.engine import rundir as R  # noqa: E402
from difair.engine import tensorboard as T  # noqa: E402
from difair.engine.fit import fit  # noqa: E402
from difair.errors import DifairError  # noqa: E402
from tiny import TINY, tiny_config  # noqa: E402

ON = ["logging.tensorboard=true"]
KEEP_ALL = {"scalars": 0, "histograms": 0, "images": 0}


def _events(run: Path) -> EventAccumulator:
    ea = EventAccumulator(str(run / T.TENSORBOARD), size_guidance=KEEP_ALL)
    ea.Reload()
    return ea


def _steps(ea: EventAccumulator, tag: str) -> list[int]:
    return [e.step for e in ea.Scalars(tag)]


def _stop_after(epoch: int):
    def stop(row: dict) -> None:
        if row["epoch"] == epoch:
            raise KeyboardInterrupt  # as if killed right after the epoch's checkpoint

    return stop


def test_events_equal_metrics_and_results(tmp_path: Path) -> None:
    run = tmp_path / "run"
    results = fit(tiny_config("difair", 2, [*ON, "data.val_fraction=0.2"]), run, show_progress=False)
    ea = _events(run)
    rows = R.read_metrics(run)
    assert [r["epoch"] for r in rows] == [1, 2]
    scalars = set(ea.Tags()["scalars"])
    # every loss term, the learning rate, both accuracies and the speed, under stable names
    assert {"train/loss", "train/distance", "train/correlation", "train/accuracy", "val/accuracy",
            "optim/lr", "speed/images_per_s", "speed/epoch_time_s"} <= scalars  # fmt: skip
    for tag, key in (("train/loss", "train_loss"), ("optim/lr", "lr"), ("val/accuracy", "val_accuracy"),
                     ("speed/images_per_s", "images_per_s"), ("train/accuracy", "train_accuracy")):  # fmt: skip
        events = ea.Scalars(tag)
        assert [e.step for e in events] == [1, 2], tag  # the epoch counted from 1, as metrics.jsonl
        assert [e.value for e in events] == pytest.approx([r[key] for r in rows], rel=1e-6), tag
    for row in rows:  # and every other number of the rows
        for tag, value in T.epoch_tags(row).items():
            assert [e.value for e in ea.Scalars(tag) if e.step == row["epoch"]] == pytest.approx([value])
    # the final OSR metrics of every score, at the last epoch
    saved = json.loads((run / R.RESULTS).read_text())
    assert saved["scores"] == results["scores"]
    for score, metrics in saved["scores"].items():
        for metric in ("closed_set_accuracy", "auroc", "oscr", "fpr95"):
            events = ea.Scalars(f"test/{score}/{metric}")
            assert [(e.step, e.value) for e in events] == [(2, pytest.approx(metrics[metric], rel=1e-6))]
        known, unknown = (ea.Histograms(f"scores/{score}/{k}") for k in ("known", "unknown"))
        assert [h.histogram_value.num for h in known] == [saved["n_known"]]
        assert [h.histogram_value.num for h in unknown] == [saved["n_unknown"]]
        for figure in ("scores", "roc"):
            (image,) = ea.Images(f"figures/{score}/{figure}")
            assert image.step == 2 and image.width > 100 and image.height > 100
    assert ea.Scalars("test/validation_accuracy")[0].value == pytest.approx(
        saved["validation"]["closed_set_accuracy"]
    )


def test_resume_never_duplicates_steps(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_config("ce", 3, ON), run, show_progress=False, on_epoch=_stop_after(2))
    fit(None, run, resume=True, show_progress=False)
    fit(None, run, resume=True, show_progress=False)  # a finished run: evaluated and logged again
    assert len(list((run / T.TENSORBOARD).iterdir())) == 3  # each session appends its own event file
    ea = _events(run)
    rows = R.read_metrics(run)
    for tag in ("train/loss", "optim/lr", "train/accuracy"):
        assert _steps(ea, tag) == [1, 2, 3], tag
    key = {"train/loss": "train_loss"}
    assert [e.value for e in ea.Scalars("train/loss")] == pytest.approx([r[key["train/loss"]] for r in rows])
    results = json.loads((run / R.RESULTS).read_text())
    assert [(e.step, e.value) for e in ea.Scalars("test/msp/auroc")] == [
        (3, pytest.approx(results["scores"]["msp"]["auroc"], rel=1e-6))
    ]
    assert [h.step for h in ea.Histograms("scores/msp/known")] == [3]
    assert len(ea.Images("figures/mls/roc")) == 1


def test_off_writes_no_events_and_auto_follows_the_package(tmp_path: Path, monkeypatch) -> None:
    fit(tiny_config("ce", 1), tmp_path / "off", show_progress=False)  # TINY: logging.tensorboard=false
    assert not (tmp_path / "off" / T.TENSORBOARD).exists() and (tmp_path / "off" / R.RESULTS).is_file()
    monkeypatch.setattr(T, "tensorboard_installed", lambda: False)
    fit(tiny_config("ce", 1, ["logging.tensorboard=auto"]), tmp_path / "auto", show_progress=False)
    assert not (tmp_path / "auto" / T.TENSORBOARD).exists() and (tmp_path / "auto" / R.RESULTS).is_file()
    with pytest.raises(DifairError, match="pip install tensorboard") as err:
        fit(tiny_config("ce", 1, ON), tmp_path / "on", show_progress=False)
    assert "\n" not in str(err.value) and not (tmp_path / "on").exists()  # refused before anything is written


def test_logging_is_not_part_of_what_is_trained(tmp_path: Path) -> None:
    off, on = tiny_config("ce", 2), tiny_config("ce", 2, ON)
    assert off.digest() == on.digest() and off.to_dict()["logging"] != on.to_dict()["logging"]
    older = {k: v for k, v in on.to_dict().items() if k != "logging"}  # a config.yaml from before the option
    assert TrainConfig.from_dict(older).digest() == on.digest()
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        fit(off, run, show_progress=False, on_epoch=_stop_after(1))
    assert not (run / T.TENSORBOARD).exists()
    fit(on, run, resume=True, show_progress=False)  # turned on for the resume: accepted, and it logs
    ea = _events(run)
    assert _steps(ea, "train/loss") == [1, 2]  # the checkpoint's row written from metrics.jsonl, then epoch 2


def test_overwrite_replaces_the_events(tmp_path: Path) -> None:
    run = tmp_path / "run"
    fit(tiny_config("ce", 2, ON), run, show_progress=False)
    fit(tiny_config("ce", 1, [*ON, "seed=1"]), run, overwrite=True, show_progress=False)
    ea = _events(run)
    assert _steps(ea, "train/loss") == [1]
    assert ea.Scalars("train/loss")[0].value == pytest.approx(R.read_metrics(run)[0]["train_loss"])
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no staged folder left holding events


def test_benchmark_out_is_one_tensorboard_logdir(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    sets = [a for o in (*(o for o in TINY if not o.startswith("data.name=")), *ON) for a in ("--set", o)]
    argv = ["benchmark", "--quiet", "--datasets", "digits", "--methods", "ce,cac", "--splits", "0",
            "--epochs", "1", "--out", str(out), *sets]  # fmt: skip
    assert main(argv) == 0
    mux = EventMultiplexer().AddRunsFromDirectory(str(out))
    mux.Reload()
    assert sorted(mux.Runs()) == [
        f"runs/{name}/{T.TENSORBOARD}" for name in ("cac-digits-split0-seed0", "ce-digits-split0-seed0")
    ]
    for name in mux.Runs():
        assert [e.step for e in mux.Scalars(name, "train/loss")] == [1]


@pytest.mark.slow
def test_only_rank_zero_writes_events_under_ddp(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from tiny import tiny_overrides

    run = tmp_path / "ddp"
    sets = [a for o in tiny_overrides("ce", 2, ["accelerator=cpu", *ON]) for a in ("--set", o)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "difair.cli", "train", "--quiet", "--devices", "2", "--out", str(run), *sets]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(list((run / T.TENSORBOARD).iterdir())) == 1  # one writer: rank 0's
    ea = _events(run)
    assert _steps(ea, "train/loss") == [1, 2]
    assert [e.value for e in ea.Scalars("train/loss")] == pytest.approx(
        [r["train_loss"] for r in R.read_metrics(run)], rel=1e-6
    )
    assert len(ea.Scalars("test/msp/auroc")) == 1
