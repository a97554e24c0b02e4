"""Issue 11, items 5 and 9 (commands as written): a run whose checkpoint diverged, or whose config.yaml was edited
to a bad value, gets one line naming the problem from report and predict too, and nothing in the run folder is
written (no threshold of -inf stored, no image accepted)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from difair.cli import main
from difair.engine import rundir as R
from tiny import tiny_overrides

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("diverged") / "run"
    sets = [a for o in tiny_overrides("difair", 1) for a in ("--set", o)]
    assert main(["train", "--quiet", "--out", str(out), *sets]) == 0
    return out


@pytest.fixture
def diverged(trained, tmp_path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    state = R.load_checkpoint(run / R.CHECKPOINT)
    state["model"] = {
        k: v.fill_(float("inf")) if v.is_floating_point() else v for k, v in state["model"].items()
    }
    torch.save(state, run / R.CHECKPOINT)
    return run


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_line(capsys, code: int, fragment: str) -> None:
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("difair: error: ") and fragment in err, err


def test_report_and_predict_of_a_diverged_run_are_one_line(diverged, tmp_path, capsys):
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(image)
    before = _snapshot(diverged)
    for argv in (
        ["report", str(diverged), "--out", str(tmp_path / "r.html")],
        ["predict", str(diverged), str(image)],  # would calibrate a threshold of -inf and accept every image
        ["predict", str(diverged), str(image), "--threshold", "0"],
    ):
        capsys.readouterr()
        _one_line(capsys, main(argv), "the checkpoint diverged")
        assert _snapshot(diverged) == before
    assert not (tmp_path / "r.html").exists()


def test_a_hand_edited_bad_alpha_names_the_alpha_error(trained, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    config = run / R.CONFIG
    text = config.read_text()
    assert "difair:\n  features_per_class: 5\n  alpha: 10.0\n" in text
    config.write_text(
        text.replace("features_per_class: 5\n  alpha: 10.0", "features_per_class: 5\n  alpha: -5")
    )
    before = _snapshot(run)
    for argv in (["eval", str(run)], ["train", "--quiet", "--resume", str(run)]):
        capsys.readouterr()
        _one_line(capsys, main(argv), "difair.alpha must be > 0")
        assert _snapshot(run) == before
