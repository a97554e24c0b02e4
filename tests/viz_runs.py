"""Small trained runs shared by the visualisation, prediction and report tests.

Each run is trained once per test session into pytest's base temporary folder and found there by the other test
files (no in-memory global state). The MNIST run uses the real data (DIFAIR_DATA, else ~/.cache/difair-data) on a
subset, at 16x16, for one epoch; the tests that need it skip when MNIST is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from difair.config import TrainConfig, apply_overrides
from difair.data.base import OSRData
from difair.engine.fit import fit
from tiny import tiny_config

MNIST_OVERRIDES = [
    "data.name=mnist",
    "data.image_size=16",
    "model.width=0.25",
    "batch_size=128",
    "augment.randaugment_n=0",
    "augment.hflip=false",
    "augment.crop_padding=1",
    "schedule.name=cosine_warmup",
    "method=difair",
    "epochs=1",
    "optim.lr=0.05",
]


def _base(factory: pytest.TempPathFactory) -> Path:
    path = factory.getbasetemp() / "viz-runs"
    path.mkdir(exist_ok=True)
    return path


def digits_run(factory: pytest.TempPathFactory, method: str = "difair", epochs: int = 4) -> Path:
    """A tiny digits run of ``method`` (trained on first use in this session)."""
    run = _base(factory) / f"digits-{method}"
    if not (run / "results.json").is_file():
        fit(tiny_config(method, epochs), run, overwrite=True, show_progress=False)
    return run


def mnist_root() -> Path:
    """The data root holding MNIST, or a skip naming how to get it."""
    env = os.environ.get("DIFAIR_DATA")
    root = Path(env).expanduser() if env else Path.home() / ".cache" / "difair-data"
    if not (root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").is_file():
        pytest.skip(
            f"MNIST absent from {root}: run ../shared/tools/prepare-data ~/.cache/difair-data or set DIFAIR_DATA"
        )
    return root


def _subset(data: OSRData, n_train: int, n_test_each: int, seed: int = 0) -> OSRData:
    g = torch.Generator().manual_seed(seed)
    tr = torch.randperm(len(data.train_labels), generator=g)[:n_train].sort().values
    known = torch.nonzero(data.test_labels >= 0).ravel()
    unknown = torch.nonzero(data.test_labels < 0).ravel()
    te = torch.cat(
        [
            known[torch.randperm(len(known), generator=g)[:n_test_each]].sort().values,
            unknown[torch.randperm(len(unknown), generator=g)[:n_test_each]].sort().values,
        ]
    )
    return OSRData(
        name=data.name,
        split=data.split,
        class_names=data.class_names,
        train_images=data.train_images[tr].clone(),
        train_labels=data.train_labels[tr].clone(),
        test_images=data.test_images[te].clone(),
        test_labels=data.test_labels[te].clone(),
        mean=data.mean,
        std=data.std,
        test_source_labels=data.test_source_labels[te].clone()
        if data.test_source_labels is not None
        else None,
        unknown_class_names=data.unknown_class_names,
        meta=data.meta,
    )


def mnist_run(factory: pytest.TempPathFactory) -> tuple[Path, OSRData]:
    """A 1-epoch DIFAIR run on 4,000 MNIST training images at 16x16, and the data subset it was trained on."""
    root = mnist_root()
    base = _base(factory)
    run, cache = base / "mnist-difair", base / "mnist-subset.pt"
    cfg = TrainConfig.from_dict(
        apply_overrides(TrainConfig().to_dict(), [*MNIST_OVERRIDES, f"data.root={root}"])
    )
    if cache.is_file():
        data = torch.load(cache, weights_only=False)
    else:
        from difair.data import get_dataset

        data = _subset(get_dataset(cfg.data), 4000, 300)
        torch.save(data, cache)
    if not (run / "results.json").is_file():
        fit(cfg, run, overwrite=True, show_progress=False, data=data)
    return run, data
