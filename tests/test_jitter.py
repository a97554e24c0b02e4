"""Contrast/brightness jitter (Keras RandomContrast / RandomBrightness, the authors' MNIST augmentation)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from difair.config import AugmentConfig, TrainConfig, apply_overrides
from difair.data.augment import Augmenter, adjust_brightness, adjust_contrast, random_jitter
from difair.errors import DifairError


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_adjust_contrast_known_answer_per_channel_mean_and_clip():
    # channel 0: mean 138.75; f = 0.5 -> (x - 138.75) * 0.5 + 138.75
    # channel 1: mean 20; f = 0.5 -> 15, 25, 15, 25
    img = torch.tensor([[[[0, 100], [200, 255]], [[10, 30], [10, 30]]]], dtype=torch.uint8)
    out = adjust_contrast(img, torch.tensor([0.5]))
    expected = [[[69.375, 119.375], [169.375, 196.875]], [[15, 25], [15, 25]]]
    torch.testing.assert_close(out[0], torch.tensor(expected))
    # f = 1.5 pushes channel 0 beyond [0, 255]: clipped (Keras clips after the contrast)
    out = adjust_contrast(img, torch.tensor([1.5]))
    assert out[0, 0].tolist() == [[0.0, 80.625], [230.625, 255.0]]


def test_adjust_brightness_known_answer_and_clip():
    img = torch.tensor([[[[0, 100], [200, 255]]], [[[0, 100], [200, 255]]]], dtype=torch.uint8)
    out = adjust_brightness(img, torch.tensor([0.2, -0.5]))
    assert out[0, 0].tolist() == [[51.0, 151.0], [251.0, 255.0]]  # +51, clipped at 255
    assert out[1, 0].tolist() == [[0.0, 0.0], [72.5, 127.5]]  # -127.5, clipped at 0


def _factors(images: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """The contrast factor each image got: ratio of the deviations from the mean (no clipping in these images)."""
    x, y = images.float(), out.float()
    dx = x - x.mean(dim=(-2, -1), keepdim=True)
    dy = y - x.mean(dim=(-2, -1), keepdim=True)
    return (dy * dx).sum(dim=(1, 2, 3)) / (dx * dx).sum(dim=(1, 2, 3))


def test_contrast_factor_per_sample_or_per_batch_within_range():
    rng = np.random.default_rng(0)
    images = torch.from_numpy(
        rng.integers(100, 156, (64, 1, 16, 16), dtype=np.uint8)
    )  # mid-grey: no clipping
    per_sample = _factors(images, random_jitter(images, 0.5, 0.0, "sample", _gen()))
    per_batch = _factors(images, random_jitter(images, 0.5, 0.0, "batch", _gen()))
    assert per_sample.min() >= 0.5 - 0.02 and per_sample.max() <= 1.5 + 0.02
    assert per_sample.std() > 0.15  # U[0.5, 1.5] has std 0.29
    assert per_batch.std() < 0.01  # one factor for the whole batch (rounding noise only)
    assert 0.5 - 0.02 <= per_batch.mean() <= 1.5 + 0.02


def test_brightness_delta_per_sample_and_uint8_out():
    images = torch.full((400, 1, 4, 4), 128, dtype=torch.uint8)
    out = random_jitter(images, 0.0, 0.5, generator=_gen(1))
    assert out.dtype == torch.uint8
    per_image = out.float().mean(dim=(1, 2, 3))
    assert torch.equal(out.float().amin(dim=(1, 2, 3)), per_image)  # one delta per image
    assert per_image.min() <= 10 and per_image.max() >= 245  # 128 +- 127.5, both ends reached and clipped
    assert abs(per_image.mean().item() - 128) < 10


def test_no_jitter_is_identity_and_seeded_jitter_reproduces():
    images = torch.randint(0, 256, (8, 1, 8, 8), dtype=torch.uint8)
    assert random_jitter(images, 0.0, 0.0) is images
    a = random_jitter(images, 0.5, 0.5, generator=_gen(3))
    assert torch.equal(a, random_jitter(images, 0.5, 0.5, generator=_gen(3)))
    assert not torch.equal(a, images)


def test_augmenter_applies_the_jitter_before_the_crop():
    cfg = AugmentConfig(randaugment_n=0, crop_padding=0, hflip=False, brightness=0.5)
    images = torch.full((32, 1, 4, 4), 128, dtype=torch.uint8)
    out = Augmenter(cfg)(images, _gen())
    assert out.shape == images.shape and not torch.equal(out, images)
    plain = Augmenter(AugmentConfig(randaugment_n=0, crop_padding=0, hflip=False))(images, _gen())
    assert torch.equal(plain, images)


@pytest.mark.parametrize(
    "override, fragment",
    [("augment.contrast=1.5", "augment.contrast"), ("augment.contrast_per=epoch", "augment.contrast_per")],
)
def test_config_refuses_bad_jitter(override, fragment):
    cfg = TrainConfig.from_dict(apply_overrides(TrainConfig().to_dict(), [override]))
    with pytest.raises(DifairError, match=fragment):
        cfg.resolve()
