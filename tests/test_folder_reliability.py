"""Folder datasets and predict inputs: empty known classes, symlink loops, dangling links, 16-bit images."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from difair.config import DataConfig
from difair.data.cache import list_images, to_8bit
from difair.data.folder import load_folder
from difair.errors import DifairError
from difair.predict.images import load_images, prepare_images
from difair.viz.explain import display_image
from tiny import image_tree


def _cfg(root: Path, known: list[str]) -> DataConfig:
    return DataConfig(name=f"folder:{root}", known=known, image_size=8)


@pytest.mark.parametrize(
    "train, fragment",
    [
        ({"cat": 3, "dog": 0, "fox": 2}, "known class 'dog' has no training images"),  # empty train folder
        ({"cat": 3, "fox": 2}, "known class 'dog' has no training images"),  # present only in test/
    ],
)
def test_a_known_class_without_training_images_is_an_error(tmp_path, train, fragment):
    root = image_tree(tmp_path / "ds", train, {"cat": 2, "dog": 2, "fox": 2})
    with pytest.raises(DifairError, match=fragment) as err:
        load_folder(_cfg(root, ["cat", "dog"]), cache_dir=tmp_path / "cache")
    assert "\n" not in str(err.value)


def test_symlink_loops_and_dangling_links_are_reported_and_skipped(tmp_path):
    root = image_tree(tmp_path / "ds", {"cat": 3, "dog": 3}, {"cat": 2, "dog": 2, "fox": 2})
    d = root / "train" / "cat"
    os.symlink(d / "loop.png", d / "loop.png")  # a link to itself: ELOOP
    os.symlink(d / "gone.png", d / "dangling.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        files = list_images(d)
    assert [Path(f).name for f in files] == ["0.png", "1.png", "2.png"]
    assert any("skipped 2 unreadable image entries" in str(w.message) for w in caught)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = load_folder(_cfg(root, ["cat", "dog"]), cache_dir=tmp_path / "cache")
    assert len(data.train_labels) == 6


def test_predict_reports_dangling_links_instead_of_dropping_them(tmp_path):
    d = tmp_path / "photos"
    d.mkdir()
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(d / "a.png")
    os.symlink(d / "missing.png", d / "b.png")
    batch, names, skipped = load_images([str(d)], 8, 1)
    assert len(batch) == 1 and names == [str(d / "a.png")]
    assert [s[0] for s in skipped] == [str(d / "b.png")] and "cannot read" in skipped[0][1]


def test_16_bit_images_are_scaled_not_clipped_in_training_and_predict(tmp_path):
    g8 = np.array([[0, 64, 128, 255]] * 4, dtype=np.uint8)
    g16 = (g8.astype(np.uint16) * 257).astype(np.uint16)  # the same picture in 16 bits (255 -> 65535)
    Image.fromarray(g8).save(tmp_path / "g8.png")
    Image.fromarray(g16).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as im:
        assert im.mode.startswith("I")  # PIL opens it as a high-depth mode
        assert (
            np.asarray(im.convert("L")).max() == 255 and np.asarray(im.convert("L"))[0, 1] == 255
        )  # PIL clips
        assert np.array_equal(np.asarray(to_8bit(im, "L")), g8)
    with Image.open(tmp_path / "g16.png") as im:
        assert np.array_equal(np.asarray(to_8bit(im, "RGB"))[..., 0], g8)
    # predict: the 8- and 16-bit files give the same input tensor
    batch, _, skipped = load_images([str(tmp_path / "g8.png"), str(tmp_path / "g16.png")], 4, 1)
    assert not skipped and torch.equal(batch[0], batch[1])
    # float images in [0, 1]
    f = Image.fromarray(g8.astype(np.float32) / 255.0, mode="F")
    assert np.array_equal(np.asarray(to_8bit(f, "L")), g8)
    # what a card and the activation maps draw: the same pixels for both files and the float image
    for shown in (
        display_image(tmp_path / "g16.png", 1),
        display_image(f, 1),
        display_image(tmp_path / "g16.png", 3),
    ):
        assert torch.equal(shown[0], torch.from_numpy(g8))


def test_16_bit_training_images_decode_like_their_8_bit_copies(tmp_path):
    root = tmp_path / "ds"
    rng = np.random.default_rng(1)
    for depth in (8, 16):
        for split, name in (("train", "a"), ("train", "b"), ("test", "a"), ("test", "c")):
            d = root / f"d{depth}" / split / name
            d.mkdir(parents=True, exist_ok=True)
    for split, name in (("train", "a"), ("train", "b"), ("test", "a"), ("test", "c")):
        g8 = rng.integers(0, 256, (8, 8), dtype=np.uint8)
        Image.fromarray(g8).convert("RGB").save(root / "d8" / split / name / "x.png")
        Image.fromarray(g8.astype(np.uint16) * 257).save(root / "d16" / split / name / "x.png")
    d8 = load_folder(_cfg(root / "d8", ["a", "b"]), cache_dir=tmp_path / "c8")
    d16 = load_folder(_cfg(root / "d16", ["a", "b"]), cache_dir=tmp_path / "c16")
    assert torch.equal(d8.train_images, d16.train_images)


def _train_folder_run(root: Path, known: str, dataset: str | None = None, out: Path | str = "run") -> None:
    """Three 4-image classes in ``root`` and a 1-epoch run on them into ``out``, through the CLI."""
    from difair.cli import main

    image_tree(root, {"cat": 4, "dog": 4, "fox": 4}, {"cat": 2, "dog": 2, "fox": 2})
    sets = [
        f"data.known={known}",
        "data.image_size=8",
        "model.backbone=small_cnn8",
        "model.width=0.25",
        "epochs=1",
    ]
    argv = ["train", "--quiet", "--dataset", dataset or f"folder:{root}", "--out", str(out)]
    assert main([*argv, *(a for s in sets for a in ("--set", s))]) == 0


def test_a_run_refuses_its_dataset_once_the_known_classes_changed(tmp_path, capsys):
    from difair.cli import main

    root, run = tmp_path / "ds", tmp_path / "run"
    _train_folder_run(root, "0,1", out=run)  # known: cat, dog (by index)
    image_tree(root, {"bird": 4}, {"bird": 2})  # a new class folder sorts first: index 0 is now bird
    for cmd in (
        ["eval", str(run)],
        ["calibrate", str(run)],
        ["report", str(run), "--no-tsne"],
        ["eval", str(run), "--scores", "knn"],
    ):
        assert main(cmd) == 2
        err = capsys.readouterr().err
        assert "trained with known class 0 = 'cat', but its dataset now gives 'bird' there" in err, err


def test_a_folder_run_finds_its_images_from_any_working_directory(tmp_path, monkeypatch):
    from difair.cli import main
    from difair.config import TrainConfig

    monkeypatch.chdir(tmp_path)
    _train_folder_run(Path("ds"), "cat,dog", dataset="folder:ds")
    saved = TrainConfig.from_yaml((tmp_path / "run" / "config.yaml").read_text())
    assert (saved.data.name, saved.data.root) == ("folder:ds", str(tmp_path))  # relative to where it started
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert main(["eval", str(tmp_path / "run")]) == 0
    # moved with the folder that holds it: data.root in config.yaml (outside the run's identity) follows it
    (tmp_path / "ds").rename(tmp_path / "elsewhere" / "ds")
    cfg_file = tmp_path / "run" / "config.yaml"
    cfg_file.write_text(
        cfg_file.read_text().replace(f"root: {tmp_path}\n", f"root: {tmp_path / 'elsewhere'}\n")
    )
    assert main(["eval", str(tmp_path / "run")]) == 0


def test_a_run_whose_data_moved_says_what_to_do_for_the_run(tmp_path, capsys):
    from difair.cli import main
    from difair.data.build import missing_dataset

    root, run = tmp_path / "ds", tmp_path / "run"
    _train_folder_run(root, "cat,dog", out=run)
    root.rename(tmp_path / "moved")
    capsys.readouterr()
    assert main(["eval", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"folder dataset {root} not found, where {run} reads it: put the folder back there" in err
    assert "--set" not in err and err.count("\n") == 1
    assert main(["train", "--resume", str(run)]) == 2  # --resume takes no --set either
    assert "--set" not in capsys.readouterr().err
    image = next((tmp_path / "moved" / "test" / "cat").iterdir())
    assert main(["predict", str(run), str(image)]) == 2  # the data would serve only to calibrate
    err = capsys.readouterr().err
    assert "--threshold T skips that" in err and err.count("\n") == 1
    assert main(["predict", str(run), str(image), "--threshold=-50"]) == 0  # and it does
    assert main(["explain", str(run), str(image), "--threshold=-50", "--out", str(tmp_path / "ex")]) == 0
    note = capsys.readouterr().err
    assert f"class means left out: folder dataset {root} not found, where {run} reads it" in note
    assert "--set" not in note  # the run's options are fixed: no training hint
    # a built-in dataset: the fix is data.root in the run's config.yaml, which is outside the run's identity
    line = missing_dataset("MNIST", tmp_path / "none", prepared=True).for_run(run)
    assert (
        line.startswith(f"MNIST not found at {tmp_path / 'none'}, where {run} reads it")
        and "data.root" in line
    )


def test_dataset_not_found_survives_a_process_boundary(tmp_path):
    import pickle

    from difair.data.build import missing_dataset
    from difair.errors import DatasetNotFound

    err = missing_dataset("MNIST", tmp_path, prepared=True)
    back = pickle.loads(pickle.dumps(err))  # a pool worker's error reaches the parent pickled
    assert (
        isinstance(back, DatasetNotFound) and str(back) == str(err) and back.for_run("R") == err.for_run("R")
    )


def test_resuming_refuses_data_whose_known_classes_changed(tmp_path):
    from difair.config import TrainConfig, apply_overrides
    from difair.engine.fit import fit

    root = image_tree(tmp_path / "ds", {"cat": 4, "dog": 4, "fox": 4}, {"cat": 2, "dog": 2, "fox": 2})
    sets = [f"data.name=folder:{root}", "data.known=0,1", "data.image_size=8", "model.backbone=small_cnn8",
            "model.width=0.25", "epochs=2"]  # fmt: skip
    cfg = TrainConfig.from_dict(apply_overrides(TrainConfig().to_dict(), sets))

    def stop(row) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(cfg, tmp_path / "run", show_progress=False, on_epoch=stop)
    image_tree(root, {"bird": 4}, {"bird": 2})
    with pytest.raises(
        DifairError, match="trained with known class 0 = 'cat', but its dataset now gives 'bird'"
    ):
        fit(None, tmp_path / "run", resume=True, show_progress=False)


def test_the_drawn_image_is_the_part_the_model_sees():
    # a run with crop_pct 0.5 at size 8 resizes to 16 and keeps the central 8: the middle half of each side
    a = np.full((20, 40), 200, np.uint8)  # H 20, W 40: the kept window is rows 5..14, columns 10..29
    a[5:15, 10:30] = 7
    im = Image.fromarray(a)
    shown = display_image(im, 1, 8, 0.5)
    assert shown.shape == (1, 10, 20) and int(shown.max()) == 7  # nothing of the border the model never sees
    x, _, _ = prepare_images([im], 8, 1, crop_pct=0.5)
    inner = x[
        ..., 2:6, 2:6
    ]  # the model input agrees: away from the resampling's blur at its edge, the window
    assert float(inner.max()) == pytest.approx(7 / 255, abs=1e-6) and float(inner.min()) == pytest.approx(
        7 / 255, abs=1e-6
    )
    assert display_image(im, 1, 8, None).shape == (1, 20, 40)  # no crop_pct: the whole image
