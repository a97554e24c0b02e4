"""Prediction with rejection: threshold calibration, every input kind, folders with bad files, CSV, CLI."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import difair
from difair.cli import main
from difair.data import get_dataset
from difair.engine.load import load_run
from difair.errors import DifairError
from difair.predict import (
    THRESHOLD_FILE,
    Predictor,
    calibrate,
    load_images,
    prepare_images,
    read_calibration,
    threshold_for_known_fraction,
)
from difair.viz.analysis import analyze
from viz_runs import digits_run, mnist_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return digits_run(tmp_path_factory, "difair")


@pytest.fixture(scope="module")
def data(run_dir):
    return get_dataset(load_run(run_dir).config.data)


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.95, 0.99, 1.0])
def test_threshold_keeps_the_asked_fraction(keep: float) -> None:
    rng = np.random.default_rng(0)
    s = np.round(rng.normal(size=997), 2)  # ties included
    t = threshold_for_known_fraction(s, keep)
    kept = (s >= t).mean()
    assert kept >= keep
    # the largest such threshold: any higher score value keeps less than asked
    higher = s[s > t]
    if higher.size:
        assert (s >= higher.min()).mean() < keep


def test_threshold_rejects_bad_fraction() -> None:
    with pytest.raises(DifairError, match="fraction"):
        threshold_for_known_fraction([1.0, 2.0], 0.0)


def test_calibrate_stores_threshold_with_the_run(run_dir: Path, data) -> None:
    rec = calibrate(run_dir, 0.9, data=data, device="cpu")
    stored = json.loads((run_dir / THRESHOLD_FILE).read_text())
    assert stored == rec and read_calibration(run_dir) == rec
    n_known = data.n_known_test
    assert 0.9 <= rec["known_accepted"] < 0.9 + 2 / n_known
    ra = analyze(run_dir, data=data, device="cpu")
    s = ra.test_scores[data.test_labels >= 0]
    assert float((s >= rec["threshold"]).double().mean()) == pytest.approx(rec["known_accepted"])
    assert ra.threshold == rec["threshold"] and ra.keep == 0.9
    # a calibration made for another checkpoint is ignored
    (run_dir / THRESHOLD_FILE).write_text(json.dumps({**rec, "checkpoint": "0" * 16}))
    assert read_calibration(run_dir) is None
    calibrate(run_dir, 0.95, data=data, device="cpu")


def test_each_score_keeps_its_own_calibration(run_dir: Path, data, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("threshold.json"))
    mine = calibrate(run, 0.9, score="class_activation", data=data, device="cpu")
    pr = difair.load(run, device="cpu", data=data)  # the default score: calibrated now, at 0.95
    assert pr.calibrated_now and pr.score_name == "min_distance" and pr.calibration["keep_known"] == 0.95
    assert read_calibration(run, "class_activation") == mine  # not overwritten by the other score's
    assert read_calibration(run)["score"] == "min_distance"  # the last calibrated
    again = difair.load(run, device="cpu", data=data, score="class_activation")
    assert not again.calibrated_now and again.threshold == mine["threshold"]
    assert analyze(run, data=data, device="cpu", score="class_activation").threshold == mine["threshold"]
    assert read_calibration(run, "max_activation") is None
    mine2 = calibrate(
        run, 0.8, score="class_activation", data=data, device="cpu"
    )  # a recalibration replaces it
    assert (
        read_calibration(run, "class_activation") == mine2
        and read_calibration(run, "min_distance")["keep_known"] == 0.95
    )
    stored = json.loads((run / THRESHOLD_FILE).read_text())
    assert stored["score"] == "class_activation" and list(stored["others"]) == ["min_distance"]


def test_every_input_kind_gives_the_same_prediction(run_dir: Path, data, tmp_path: Path) -> None:
    pr = difair.load(run_dir, device="cpu", data=data)
    img = data.test_images[:4]
    ref = pr.predict(img)
    assert ref.names == ["#0", "#1", "#2", "#3"] and not ref.skipped
    arrays = [im[0].numpy() for im in img]  # HxW uint8
    paths = []
    for i, a in enumerate(arrays):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(a).save(paths[-1])
    variants = {
        "float tensor": img.float() / 255,
        "list of CHW": list(img),
        "numpy HxW": arrays,
        "numpy HxWx1": [a[:, :, None] for a in arrays],
        "PIL": [Image.fromarray(a) for a in arrays],
        "paths": paths,
        "folder": str(tmp_path),
    }
    for name, images in variants.items():
        got = pr.predict(images)
        assert got.labels == ref.labels, name
        torch.testing.assert_close(got.scores, ref.scores, atol=1e-4, rtol=0, msg=name)


def test_predictor_agrees_with_the_evaluation(run_dir: Path, data) -> None:
    pr = Predictor(run_dir, device="cpu", data=data)
    ra = analyze(run_dir, data=data, device="cpu")
    res = pr.predict(data.test_images)
    assert torch.equal(res.nearest, ra.test_preds)
    torch.testing.assert_close(res.scores, ra.test_scores)
    assert res.threshold == ra.threshold
    known = data.test_labels >= 0
    assert float(res.accepted[known].double().mean()) >= pr.calibration["keep_known"]
    assert all(
        (lab == "unknown") == (not a) for lab, a in zip(res.labels, res.accepted.tolist(), strict=True)
    )
    torch.testing.assert_close(-res.per_class.min(1).values, res.scores)  # score = minus the nearest distance


def test_mixed_images_convert_to_the_run_size_and_channels() -> None:
    rgb = np.zeros((30, 20, 3), np.uint8)
    rgb[..., 0] = 255
    rgba = Image.new("RGBA", (7, 9), (0, 0, 255, 128))
    x, names, skipped = load_images([rgb, rgba, torch.rand(1, 5, 5), np.ones((12, 12), np.float32)], 8, 1)
    assert x.shape == (4, 1, 8, 8) and not skipped and names == ["#0", "#1", "#2", "#3"]
    assert float(x[0].mean()) == pytest.approx(0.299, abs=0.01)  # red -> luminance
    x3, _, _ = load_images([np.full((4, 4), 255, np.uint8)], 6, 3)
    assert x3.shape == (1, 3, 6, 6) and float(x3.min()) == 1.0
    _, _, skipped = load_images([np.zeros((4, 4), np.uint8), "/no/such.png"], 8, 1)
    assert [s[0] for s in skipped] == ["/no/such.png"]  # a file that cannot be read is skipped, not fatal


def test_in_memory_inputs_that_are_not_images_are_refused_not_skipped() -> None:
    # an array or tensor is the caller's code, not one bad file among many: it raises, naming the fix
    with pytest.raises(DifairError, match=r"#1: a float image must hold values in \[0, 1\].*0 to 16"):
        load_images([np.zeros((8, 8)), np.linspace(0, 16, 64).reshape(8, 8)], 8, 1)
    with pytest.raises(DifairError, match=r"ranges -2.1 to"):
        load_images(torch.full((1, 3, 8, 8), -2.1), 8, 3)  # a normalised tensor
    with pytest.raises(DifairError, match=r"shape \(5, 8, 8\).*4-D array"):
        load_images(np.zeros((5, 8, 8), np.uint8), 8, 1)
    for stack in (np.zeros((4, 8, 8), np.uint8), torch.zeros(3, 8, 8), np.zeros((2, 8, 8), np.float32)):
        # N greyscale images or one image of N channels: read as the latter, it gave one prediction for N
        with pytest.raises(
            DifairError, match=rf"shape \({len(stack)}, 8, 8\) is ambiguous for this greyscale run"
        ):
            load_images(stack, 8, 1)
    assert load_images(torch.zeros(3, 8, 8), 8, 3)[0].shape == (1, 3, 8, 8)  # a colour run reads (C, H, W)
    # in a batch or a list the images are explicit: colour images on a greyscale run convert, as PIL's do
    assert load_images(torch.rand(2, 3, 8, 8), 8, 1)[0].shape == (2, 1, 8, 8)
    assert load_images([torch.rand(3, 8, 8), torch.rand(3, 8, 8)], 8, 1)[0].shape == (2, 1, 8, 8)
    assert load_images(np.zeros((8, 8, 3), np.uint8), 8, 1)[0].shape == (1, 1, 8, 8)  # (H, W, C) is one image
    with pytest.raises(DifairError, match="int64"):
        load_images(np.zeros((8, 8), np.int64), 8, 1)
    with pytest.raises(DifairError, match="unsupported input type dict"):
        load_images([{}], 8, 1)
    with pytest.raises(DifairError, match="NaN or infinite"):  # not "the checkpoint diverged"
        load_images(torch.full((1, 8, 8), float("nan")), 8, 1)
    with pytest.raises(DifairError, match=r"with pixels, got shape \(3, 0, 0\)"):
        load_images(torch.zeros(3, 0, 0), 8, 3)
    # slight interpolation overshoot is clamped, not refused
    x, _, _ = load_images(torch.full((1, 4, 4), 1.004), 4, 1)
    assert float(x.max()) == 1.0


def test_prepare_images_frames_like_the_runs_data() -> None:
    img = np.random.default_rng(0).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    x, _, _ = prepare_images([img], 16, 3, crop_pct=0.5)  # resized to 32, then the central 16
    wide, _, _ = load_images([img], 32, 3)
    torch.testing.assert_close(x, wide[..., 8:24, 8:24])
    same, _, _ = prepare_images([img], 16, 3, crop_pct=None)
    torch.testing.assert_close(same, load_images([img], 16, 3)[0])


def test_numpy_batches_are_split_into_images() -> None:
    rng = np.random.default_rng(0)
    nhwc = rng.integers(0, 256, (5, 8, 8, 1), dtype=np.uint8)
    x, names, _ = load_images(nhwc, 8, 1)
    assert x.shape == (5, 1, 8, 8) and names == [f"#{i}" for i in range(5)]
    torch.testing.assert_close(x[:, 0], torch.from_numpy(nhwc[..., 0]).float() / 255)
    nchw = np.ascontiguousarray(nhwc.transpose(0, 3, 1, 2))
    x2, _, _ = load_images(nchw, 8, 1)
    torch.testing.assert_close(x2, x)


def _folder(tmp_path: Path, data) -> Path:
    d = tmp_path / "imgs"
    d.mkdir()
    a = data.test_images[0, 0].numpy()
    Image.fromarray(a).resize((40, 40)).save(d / "a_gray_40.png")
    Image.fromarray(np.stack([a] * 3, -1)).save(d / "b_rgb_8.jpg")
    Image.fromarray(data.test_images[300, 0].numpy()).convert("RGBA").resize((13, 21)).save(d / "c_rgba.png")
    Image.fromarray(a).convert("P").save(d / "d_palette.gif")
    Image.fromarray((a.astype(np.int32) * 200).astype(np.int32)).save(d / "e_int32.tif")
    (d / "f_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    (d / "g_empty.jpg").write_bytes(b"")
    (d / "notes.txt").write_text("not an image, not listed")
    return d


def test_cli_predict_folder_reports_bad_files_and_continues(
    run_dir: Path, data, tmp_path: Path, capsys
) -> None:
    folder = _folder(tmp_path, data)
    out = tmp_path / "preds.csv"
    assert main(["predict", str(run_dir), str(folder), "--out", str(out), "--device", "cpu"]) == 0
    cap = capsys.readouterr()
    assert "skipped" in cap.err and "f_corrupt.png" in cap.err and "g_empty.jpg" in cap.err
    assert "notes.txt" not in cap.err + cap.out
    rows = list(csv.DictReader(out.open()))
    names = load_run(run_dir).class_names
    assert [Path(r["path"]).name for r in rows] == [
        "a_gray_40.png",
        "b_rgb_8.jpg",
        "c_rgba.png",
        "d_palette.gif",
        "e_int32.tif",
    ]
    assert list(rows[0]) == ["path", "prediction", "accepted", "score", "nearest_class"] + [
        f"dist_{c}" for c in names
    ]
    t = read_calibration(run_dir)["threshold"]
    for r in rows:
        assert (float(r["score"]) >= t) == (r["accepted"] == "True")
        assert r["prediction"] == (r["nearest_class"] if r["accepted"] == "True" else "unknown")
        dists = [float(r[f"dist_{c}"]) for c in names]
        assert r["nearest_class"] == names[int(np.argmin(dists))]
    assert rows[0]["nearest_class"] == rows[1]["nearest_class"] == rows[3]["nearest_class"]
    assert "a_gray_40.png" in cap.out  # the readable table


def test_cli_threshold_override_and_all_unreadable(run_dir: Path, data, tmp_path: Path, capsys) -> None:
    folder = _folder(tmp_path, data)
    out = tmp_path / "p.csv"
    assert main(["predict", str(run_dir), str(folder), "--threshold", "1e9", "--out", str(out)]) == 0
    assert {r["prediction"] for r in csv.DictReader(out.open())} == {"unknown"}
    assert (
        main(["predict", str(run_dir), str(folder / "a_gray_40.png"), "--threshold=-1e9", "--out", str(out)])
        == 0
    )
    assert next(csv.DictReader(out.open()))["prediction"] != "unknown"
    capsys.readouterr()
    assert main(["predict", str(run_dir), str(folder / "f_corrupt.png"), str(tmp_path / "missing.png")]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("difair: error: none of the inputs")


def test_python_on_error_raise(run_dir: Path, data) -> None:
    pr = difair.load(run_dir, device="cpu", data=data)
    with pytest.raises(DifairError, match="no/such"):
        pr.predict(["/no/such.png"], on_error="raise")


def test_an_unfinished_run_knows_its_image_size_from_the_checkpoint(run_dir: Path, tmp_path: Path) -> None:
    import shutil

    from difair.engine import rundir as R
    from difair.predict import run_image_size

    def unset_size(run):  # as a run that left data.image_size to the dataset
        run.config = dataclasses.replace(
            run.config, data=dataclasses.replace(run.config.data, image_size=None)
        )
        return run

    partial = tmp_path / "partial"
    shutil.copytree(
        run_dir, partial, ignore=shutil.ignore_patterns("results.json", "features", "threshold.json")
    )
    run = unset_size(load_run(partial))
    assert run_image_size(run) == get_dataset(load_run(run_dir).config.data).image_size
    state = R.load_checkpoint(partial / R.CHECKPOINT)
    del state["image_size"]  # a checkpoint written before the record, with no results.json beside it
    R.save_checkpoint(partial / R.CHECKPOINT, state)
    with pytest.raises(DifairError, match="run difair eval .*partial first"):
        run_image_size(unset_size(load_run(partial)))


def test_ce_gives_probabilities_and_cac_its_recentred_anchors(tmp_path_factory, capsys) -> None:
    ce = digits_run(tmp_path_factory, "ce", epochs=2)
    d = get_dataset(load_run(ce).config.data)
    res = difair.load(ce, device="cpu", data=d).predict(d.test_images[:10])
    assert res.per_class_kind == "probability"
    torch.testing.assert_close(res.per_class.sum(1), torch.ones(10))
    assert list(res.rows()[0])[-1].startswith("prob_")
    cac = digits_run(tmp_path_factory, "cac", epochs=2)
    pr = difair.load(cac, device="cpu", data=d)
    assert pr.calibration["cac_anchors"] is not None
    ra = analyze(cac, data=d, device="cpu")  # re-centres the anchors the same way
    torch.testing.assert_close(pr.model.head.anchors, ra.model.head.anchors)
    moved = pr.model.head.anchors.clone()
    analyze(pr.run, data=d, device="cpu")  # the same loaded run: its anchors are not moved twice
    assert torch.equal(pr.model.head.anchors, moved)
    again = difair.load(cac, device="cpu")  # from threshold.json: no data needed
    assert not again.calibrated_now
    torch.testing.assert_close(again.model.head.anchors, ra.model.head.anchors)
    res = again.predict(d.test_images)
    assert torch.equal(res.nearest, ra.test_preds)
    assert res.per_class_kind == "distance"


def test_mnist_run_calibrates_and_predicts(tmp_path_factory) -> None:
    run, data = mnist_run(tmp_path_factory)
    pr = Predictor(run, device="cpu", data=data, keep=0.8)
    known = data.test_labels >= 0
    res = pr.predict(data.test_images)
    frac = float(res.accepted[known].double().mean())
    assert 0.8 <= frac < 0.8 + 2 / int(known.sum())
    assert pr.calibration["keep_known"] == 0.8 and pr.image_size == 16 and pr.channels == 1
    big = Image.fromarray(data.test_images[0, 0].numpy()).resize((64, 64)).convert("RGB")
    assert pr.predict(big).nearest[0] == res.nearest[0]


def test_a_score_that_depends_on_the_batch_is_not_given_to_one_image(tmp_path: Path) -> None:
    from difair.engine.fit import fit
    from tiny import tiny_config

    # --authors-code's CAC softmin is taken over every sample scored together: alone, an image scored otherwise
    run = tmp_path / "cac-global"
    fit(tiny_config("cac", 1, ["cac.rejection_softmin=global"]), run, show_progress=False)
    pr = difair.load(run, device="cpu")
    assert pr.score_name == "min_distance" and pr.calibration["score"] == "min_distance"
    assert pr.score_note == (
        "score cac of this run takes its softmin over all the samples scored together "
        "(cac.rejection_softmin=global): images are scored with min_distance"
    )
    d = get_dataset(pr.run.config.data)
    one = torch.cat([pr.predict(d.test_images[i : i + 1]).scores for i in range(6)])
    torch.testing.assert_close(one, pr.predict(d.test_images[:6]).scores)  # the same alone as in a batch
    with pytest.raises(
        DifairError, match=r"score cac of this run takes its softmin over all the samples .*min_distance"
    ):
        difair.load(run, device="cpu", score="cac")
    assert pr.method.prediction_score(None) == "min_distance"
    sample = load_run(run).method
    sample.options.rejection_softmin = "sample"
    assert sample.prediction_score(None) == "cac" and sample.prediction_score("cac") == "cac"
    assert (
        difair.load(run, device="cpu", score="min_distance").score_note is None
    )  # asked for: nothing to say


def test_a_fraction_of_zero_is_refused_not_read_as_the_default(run_dir: Path, data) -> None:
    # `keep or 0.95` once turned keep=0 into 0.95 in the predictor and the analysis
    with pytest.raises(DifairError, match=r"fraction of knowns to keep must be in \(0, 1\], got 0"):
        difair.load(run_dir, device="cpu", data=data, keep=0.0)
    with pytest.raises(DifairError, match=r"fraction of knowns to keep must be in \(0, 1\], got 0"):
        analyze(run_dir, data=data, device="cpu", keep=0.0)


def test_calibrate_flags_read_the_library_facts() -> None:
    from difair.cli import build_parser
    from difair.predict.calibration import CALIBRATE_ON

    calibrate_cmd = build_parser()._subparsers._group_actions[0].choices["calibrate"]
    on = next(a for a in calibrate_cmd._actions if a.dest == "on")
    assert tuple(on.choices) == CALIBRATE_ON and on.default == CALIBRATE_ON[0]
    from difair.cliutil import KEEP_HELP
    from difair.predict.calibration import KEEP_KNOWN

    assert KEEP_HELP.endswith(f"(default {KEEP_KNOWN})")  # the parser's torch-free copy of the default
