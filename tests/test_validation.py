"""The held-out validation set (data.val_fraction): split, recorded in results, used by calibration."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from difair.config import DataConfig
from difair.data import get_dataset
from difair.data.validation import hold_out_validation, stratified_holdout
from difair.engine.fit import fit
from difair.errors import DifairError
from difair.predict import calibrate
from tiny import tiny_config


def test_stratified_holdout_known_answer_sizes_and_seed():
    labels = np.array([0] * 10 + [1] * 4 + [2] * 3)
    idx = stratified_holdout(labels, 0.25, seed=0)
    # round(2.5) = 2 (round half to even), round(1.0) = 1, round(0.75) = 1
    assert np.bincount(labels[idx], minlength=3).tolist() == [2, 1, 1]
    assert np.all(np.diff(idx) > 0)
    assert np.array_equal(idx, stratified_holdout(labels, 0.25, seed=0))
    assert not np.array_equal(
        stratified_holdout(labels, 0.5, seed=1), stratified_holdout(labels, 0.5, seed=2)
    )
    # at least one per class, and at least one left for training
    assert np.bincount(labels[stratified_holdout(labels, 0.01, 0)]).tolist() == [1, 1, 1]
    assert np.bincount(labels[stratified_holdout(labels, 0.99, 0)]).tolist() == [9, 3, 2]


def test_stratified_holdout_refuses_a_class_of_one_and_bad_fractions():
    with pytest.raises(DifairError, match="at least 2 per class"):
        stratified_holdout(np.array([0, 0, 1]), 0.5, 0)
    with pytest.raises(DifairError, match="known class 'horse' has 1 training image"):
        stratified_holdout(np.array([0, 0, 1]), 0.5, 0, ["cat", "horse"])
    with pytest.raises(DifairError, match="val_fraction"):
        stratified_holdout(np.array([0, 0]), 1.0, 0)


def test_hold_out_partitions_the_training_set():
    data = get_dataset(DataConfig(name="digits", image_size=8))
    held = hold_out_validation(data, 0.2, seed=3)
    n = len(data.train_labels)
    assert len(held.train_labels) + len(held.val_labels) == n
    assert len(held.val_labels) == pytest.approx(0.2 * n, abs=data.num_classes)
    # every original image is in exactly one part, with its label
    flat = lambda x: x.reshape(len(x), -1)  # noqa: E731
    before = sorted(zip(map(bytes, flat(data.train_images).numpy()), data.train_labels.tolist(), strict=True))
    after = sorted(
        zip(
            map(bytes, flat(torch.cat([held.train_images, held.val_images])).numpy()),
            torch.cat([held.train_labels, held.val_labels]).tolist(),
            strict=True,
        )
    )
    assert before == after
    counts = np.bincount(held.val_labels.numpy(), minlength=data.num_classes)
    assert counts.min() >= 1
    assert held.meta["validation"] == {"fraction": 0.2, "seed": 3, "n_val": len(held.val_labels)}
    assert held.summary()["n_val"] == len(held.val_labels)
    assert torch.equal(held.test_images, data.test_images) and held.mean == data.mean
    assert hold_out_validation(data, 0.0) is data


@pytest.fixture(scope="module")
def val_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("val") / "run"
    fit(tiny_config(epochs=2, extra=["data.val_fraction=0.2", "data.val_seed=1"]), out, show_progress=False)
    return out


def test_results_report_the_validation_set(val_run: Path):
    res = json.loads((val_run / "results.json").read_text())
    data = get_dataset(tiny_config(extra=["data.val_fraction=0.2", "data.val_seed=1"]).data)
    assert res["validation"]["n"] == len(data.val_labels) == res["data"]["n_val"]
    assert res["n_train"] == len(data.train_labels)
    assert 0 <= res["validation"]["closed_set_accuracy"] <= 1


def test_calibration_uses_the_validation_set_when_there_is_one(val_run: Path):
    rec = calibrate(val_run, 0.9, device="cpu")
    assert rec["calibrated_on"].startswith("validation") and rec["calibration_set"] == "val"
    data = get_dataset(tiny_config(extra=["data.val_fraction=0.2", "data.val_seed=1"]).data)
    assert rec["n_calibration"] == len(data.val_labels)
    assert rec["calibration_known_accepted"] >= 0.9
    on_test = calibrate(val_run, 0.9, device="cpu", on="test", write=False)
    assert on_test["calibrated_on"].startswith("test") and on_test["n_calibration"] == data.n_known_test
    assert on_test["calibration_set"] == "test"  # the same in one word, for code
    assert on_test["calibration_known_accepted"] == on_test["known_accepted"]


def test_calibrating_on_val_without_a_validation_set_is_refused(tmp_path: Path):
    out = tmp_path / "noval"
    fit(tiny_config(epochs=1), out, show_progress=False)
    with pytest.raises(DifairError, match="no validation set"):
        calibrate(out, 0.9, device="cpu", on="val")
    assert calibrate(out, 0.9, device="cpu")["calibrated_on"].startswith("test")


def test_config_refuses_a_fraction_of_one():
    with pytest.raises(DifairError, match="val_fraction"):
        tiny_config(extra=["data.val_fraction=1.0"]).resolve()


def test_analysis_calibrates_on_the_validation_set(val_run: Path):
    from difair.viz.analysis import analyze

    (val_run / "threshold.json").unlink(missing_ok=True)
    ra = analyze(val_run, device="cpu")
    assert "validation" in ra.threshold_source
    rec = calibrate(val_run, 0.95, device="cpu", write=False)
    assert rec["calibrated_on"].startswith("validation") and rec["calibration_set"] == "val"
    assert ra.threshold == pytest.approx(rec["threshold"])
    assert len(ra.val_scores[ra.score_name]) == rec["n_calibration"]


def test_train_prints_the_validation_accuracy(tmp_path: Path, capsys):
    from difair.cli import main
    from tiny import tiny_overrides

    sets = [a for o in tiny_overrides("ce", 1, ["data.val_fraction=0.1"]) for a in ("--set", o)]
    assert main(["train", "--quiet", "--out", str(tmp_path / "r"), *sets]) == 0
    line = [x for x in capsys.readouterr().out.splitlines() if "validation" in x]
    res = json.loads((tmp_path / "r" / "results.json").read_text())
    assert len(line) == 1 and f"({res['validation']['n']} held-out images)" in line[0]


def test_metrics_log_the_validation_accuracy_each_epoch(val_run: Path):
    rows = [json.loads(x) for x in (val_run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(0 <= r["val_accuracy"] <= 1 for r in rows)
    res = json.loads((val_run / "results.json").read_text())
    # the last epoch's model is the evaluated one: the same images, the same accuracy
    assert rows[-1]["val_accuracy"] == pytest.approx(res["validation"]["closed_set_accuracy"])
