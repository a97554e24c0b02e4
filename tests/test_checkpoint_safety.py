"""Opening a run folder never runs code: checkpoints are loaded weights-only, and bad ones get one line."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from difair.cli import main
from difair.engine import rundir as R
from difair.errors import DifairError
from tiny import tiny_overrides

MARKER = "difair-evil-ran"


class _Evil:
    """Unpickling this calls ``Path.touch`` on a marker file: what a crafted checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _sets() -> list[str]:
    return [a for o in tiny_overrides("ce", 1) for a in ("--set", o)]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("safety") / "run"
    assert main(["train", "--quiet", "--out", str(out), *_sets()]) == 0
    return out


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_crafted_pickle_is_refused_and_its_code_never_runs(tmp_path: Path):
    marker = tmp_path / MARKER
    path = tmp_path / "last.pt"
    torch.save({"model": {}, "epoch": 0, "config_digest": "x", "payload": _Evil(marker)}, path)
    with pytest.raises(DifairError, match="refused without loading them") as err:
        R.load_checkpoint(path)
    assert "\n" not in str(err.value)
    assert not marker.exists()
    # the same file loaded the unsafe way would run the payload: the test can tell the two apart
    torch.load(path, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize(
    "payload, fragment",
    [
        ([1, 2, 3], "not a difair checkpoint"),
        ({"model": {}}, "no epoch, config_digest"),
        ("text", "not a difair"),
    ],
)
def test_a_checkpoint_of_the_wrong_shape_is_one_line(tmp_path: Path, payload, fragment):
    path = tmp_path / "last.pt"
    torch.save(payload, path)
    with pytest.raises(DifairError, match=fragment):
        R.load_checkpoint(path)


def test_truncated_and_random_bytes_are_one_line(tmp_path: Path):
    path = tmp_path / "last.pt"
    torch.save({"model": {"w": torch.zeros(1000)}, "epoch": 0, "config_digest": "x"}, path)
    data = path.read_bytes()
    for bad in (data[: len(data) // 2], bytes(random.Random(0).randrange(256) for _ in range(500)), b""):
        path.write_bytes(bad)
        with pytest.raises(DifairError, match="cannot read checkpoint"):
            R.load_checkpoint(path)


def test_checkpoints_of_difair_0_1_0_still_load(tmp_path: Path):
    # before weights-only loading the numpy RNG state was numpy's own tuple (an ndarray inside)
    np.random.seed(3)
    old = {
        "model": {},
        "epoch": 2,
        "config_digest": "x",
        "rng": {**R.rng_state(), "numpy": np.random.get_state()},
    }
    path = tmp_path / "old.pt"
    torch.save(old, path)
    expected = np.random.rand(4)
    R.set_rng_state(R.load_checkpoint(path)["rng"])
    assert np.array_equal(np.random.rand(4), expected)


def test_rng_state_round_trips_weights_only(tmp_path: Path):
    path = tmp_path / "new.pt"
    torch.save({"model": {}, "epoch": 0, "config_digest": "x", "rng": R.rng_state()}, path)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    R.set_rng_state(R.load_checkpoint(path)["rng"])
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1]) and got[2] == expected[2]


@pytest.mark.parametrize("command", [["eval"], ["train", "--quiet", "--resume"], ["calibrate"]])
def test_the_cli_refuses_a_crafted_checkpoint_in_one_line(run_dir: Path, tmp_path: Path, capsys, command):
    marker = tmp_path / MARKER
    ckpt = run_dir / R.CHECKPOINT
    original = ckpt.read_bytes()
    try:
        torch.save({"model": {}, "epoch": 0, "config_digest": "x", "payload": _Evil(marker)}, ckpt)
        before = _snapshot(run_dir)
        capsys.readouterr()
        assert main([*command, str(run_dir)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "refused without loading them" in err
        assert not marker.exists()
        assert _snapshot(run_dir) == before  # nothing written, nothing deleted
    finally:
        ckpt.write_bytes(original)
