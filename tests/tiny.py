"""Tiny, fast configurations of the real engine for tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from difair.config import TrainConfig, apply_overrides

TINY = [
    "data.name=digits",
    "data.image_size=8",
    "model.width=0.25",
    "batch_size=64",
    "augment.randaugment_n=0",
    "augment.hflip=false",
    "augment.crop_padding=1",
    "schedule.name=cosine_warmup",
    "logging.tensorboard=false",  # event files and figures cost ~1 s a run: tests/test_tensorboard.py turns it on
]


def tiny_overrides(method: str = "difair", epochs: int = 3, extra: list[str] | None = None) -> list[str]:
    return [*TINY, f"method={method}", f"epochs={epochs}", "optim.lr=0.05", *(extra or [])]


def tiny_config(method: str = "difair", epochs: int = 3, extra: list[str] | None = None) -> TrainConfig:
    return TrainConfig.from_dict(
        apply_overrides(TrainConfig().to_dict(), tiny_overrides(method, epochs, extra))
    )


def image_tree(root: Path, train: dict[str, int], test: dict[str, int]) -> Path:
    """An image-folder dataset of random 8x8 PNGs: ``train`` / ``test`` images per class name in train/ and test/."""
    rng = np.random.default_rng(0)
    for split, counts in (("train", train), ("test", test)):
        for name, n in counts.items():
            d = root / split / name
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(d / f"{i}.png")
    return root
