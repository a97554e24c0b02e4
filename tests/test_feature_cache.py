"""engine.feature_cache: a run's outputs computed once per checkpoint and images, kept in RUN/features/."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from difair.config import TrainConfig
from difair.engine import feature_cache as F
from difair.engine import rundir as R


class Scaled(nn.Module):
    """uint8 images in, as difair's models take them (they scale to [0, 1] themselves)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float().div(255)


@pytest.fixture
def run(tmp_path: Path):
    torch.manual_seed(0)
    model = nn.Sequential(Scaled(), nn.Flatten(), nn.Linear(3 * 4 * 4, 5))
    return SimpleNamespace(run_dir=tmp_path, config=TrainConfig(), state={"epoch": 3}, model=model)


@pytest.fixture
def counted(monkeypatch):
    calls = []
    real = F.collect_outputs

    def collect(model, images, *args, **kwargs):
        calls.append(len(images))
        return real(model, images, *args, **kwargs)

    monkeypatch.setattr(F, "collect_outputs", collect)
    return calls


def _images(seed: int = 0, n: int = 10) -> torch.Tensor:
    return torch.randint(
        0, 256, (n, 3, 4, 4), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8
    )


def _outputs(run, images):
    return F.cached_outputs(run, "train", images, batch_size=4, device=torch.device("cpu"))


def test_outputs_are_computed_once_per_checkpoint_and_images(run, counted):
    images = _images()
    first = _outputs(run, images)
    expected = run.model(images)
    torch.testing.assert_close(first, expected)  # the model's fp32 outputs of the [0, 1] images
    assert (run.run_dir / F.FEATURES_DIR / "outputs-train.pt").is_file()
    torch.testing.assert_close(_outputs(run, images), first)
    assert counted == [10]  # the second call read the file
    _outputs(run, _images(seed=1))  # other images under the same name: computed again
    run.state["epoch"] = 4  # the run resumed: a new checkpoint
    _outputs(run, _images(seed=1))
    assert counted == [10, 10, 10]


def test_a_torn_cache_file_is_computed_again(run, counted):
    images = _images()
    first = _outputs(run, images)
    path = run.run_dir / F.FEATURES_DIR / "outputs-train.pt"
    path.write_bytes(path.read_bytes()[:50])
    torch.testing.assert_close(_outputs(run, images), first)
    assert counted == [10, 10]
    torch.testing.assert_close(_outputs(run, images), first)  # and kept again
    assert counted == [10, 10]


def test_a_folder_that_cannot_be_written_still_gets_the_outputs(run, counted, monkeypatch):
    def refuse(path, state):
        raise OSError(30, "Read-only file system", str(path))

    monkeypatch.setattr(R, "save_checkpoint", refuse)
    images = _images()
    torch.testing.assert_close(_outputs(run, images), run.model(images))
    assert not (run.run_dir / F.FEATURES_DIR / "outputs-train.pt").exists()


def test_outputs_larger_than_the_limit_are_not_kept(run, counted, monkeypatch):
    monkeypatch.setattr(
        F, "OUTPUTS_CACHE_MAX_BYTES", 10 * 5 * 4 - 1
    )  # one byte short of 10 outputs of 5 floats
    _outputs(run, _images())
    assert not (run.run_dir / F.FEATURES_DIR / "outputs-train.pt").exists()
    monkeypatch.setattr(F, "OUTPUTS_CACHE_MAX_BYTES", 10 * 5 * 4)
    _outputs(run, _images())
    assert (run.run_dir / F.FEATURES_DIR / "outputs-train.pt").is_file()


def test_the_key_follows_the_checkpoint_the_images_and_the_extra():
    run = SimpleNamespace(config=TrainConfig(), state={"epoch": 0})
    key = F.cache_key(run, _images())
    assert key == F.cache_key(run, _images())
    assert key != F.cache_key(run, _images(seed=1))
    assert key != F.cache_key(run, _images(), "True")
    assert key != F.cache_key(SimpleNamespace(config=TrainConfig(seed=1), state={"epoch": 0}), _images())
    assert key != F.cache_key(SimpleNamespace(config=TrainConfig(), state={"epoch": 1}), _images())
