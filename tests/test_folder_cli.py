"""Issue 11, items 6 and 9, the commands as written: ``difair train`` on a folder dataset whose known class has no
training images is one line, exit 2, and leaves the dataset untouched and no run folder behind; ``difair predict
DIR`` names a dangling link it skips instead of dropping it silently."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from difair.cli import main
from tiny import image_tree, tiny_overrides

pytestmark = pytest.mark.slow


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    "train",
    [{"cat": 3, "dog": 0, "fox": 2}, {"cat": 3, "fox": 2}],  # an empty train folder; dog only in test/
    ids=["empty-train-folder", "only-in-test"],
)
def test_a_known_class_without_training_images_is_one_line(tmp_path, monkeypatch, capsys, train):
    monkeypatch.setenv("DIFAIR_CACHE", str(tmp_path / "cache"))
    root = image_tree(tmp_path / "ds", train, {"cat": 2, "dog": 2, "fox": 2})
    before = _snapshot(root)
    out = tmp_path / "run"
    argv = [
        "train",
        "--quiet",
        "--dataset",
        f"folder:{root}",
        "--set",
        "data.known=cat,dog",
        "--out",
        str(out),
    ]
    argv += ["--set", "data.image_size=8", "--epochs", "1"]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "known class 'dog' has no training images" in err, err
    assert _snapshot(root) == before and not out.exists()


def test_predict_of_a_folder_names_the_dangling_link_it_skips(tmp_path, capsys):
    run = tmp_path / "run"
    sets = [a for o in tiny_overrides("ce", 1) for a in ("--set", o)]
    assert main(["train", "--quiet", "--out", str(run), *sets]) == 0
    assert main(["calibrate", str(run)]) == 0
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(photos / "a.png")
    os.symlink(photos / "missing.png", photos / "b.png")
    before = {**_snapshot(run), **_snapshot(photos)}
    capsys.readouterr()
    assert main(["predict", str(run), str(photos)]) == 0  # the readable images are predicted
    captured = capsys.readouterr()
    assert str(photos / "a.png") in captured.out
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"difair: skipped {photos / 'b.png'}"), err
    assert {**_snapshot(run), **_snapshot(photos)} == before


def test_a_skipped_link_in_a_training_folder_is_one_warning_line(tmp_path, monkeypatch, capsys):
    # it was a raw Python UserWarning with file and line, printed twice (the size estimate and the loader list it)
    import warnings

    monkeypatch.setenv("DIFAIR_CACHE", str(tmp_path / "cache"))
    root = image_tree(tmp_path / "ds", {"cat": 3, "fox": 3}, {"cat": 2, "fox": 2})
    os.symlink(root / "train" / "cat" / "gone.png", root / "train" / "cat" / "dangling.png")
    argv = ["train", "--quiet", "--dataset", f"folder:{root}", "--set", "data.known=cat", "--set",
            "data.image_size=8", "--epochs", "1", "--out", str(tmp_path / "run")]  # fmt: skip
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("default")  # as a user's interpreter shows them (pytest's own filter aside)
        assert main(argv) == 0
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "skipped 1 unreadable image entries" in ln]
    assert len(lines) == 1 and lines[0].startswith("difair: warning: skipped 1 unreadable"), err
    assert "UserWarning" not in err
