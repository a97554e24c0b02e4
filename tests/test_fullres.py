"""Issue 13 part 2, the full-resolution pipeline: RandomResizedCrop with torchvision's boxes and resampling,
data.image_size up to 448, and training images decoded per batch (data.cache=stream) with the same pixels and
the same batches as the decode-once cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from difair.config import TrainConfig
from difair.data.augment import Augmenter
from difair.data.folder import resolve_cache
from difair.data.registry import get_dataset
from difair.data.resized_crop import random_resized_crop, resized_crop, resized_crop_reference, sample_boxes
from difair.data.stream import StreamImages, choose_cache
from difair.errors import DifairError


def _folder(root: Path, per_class: int = 4, side: int = 40, classes=("ant", "bee", "cat")) -> Path:
    rng = np.random.default_rng(0)
    for split, n in (("train", per_class), ("test", 2)):
        for c in classes:
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(n):
                w = side + int(rng.integers(0, 9))  # not square: the resize distorts, as the cache does
                arr = rng.integers(0, 256, (side, w, 3), dtype=np.uint8)
                Image.fromarray(arr).save(d / f"{i}.jpg", quality=90)
    return root


def _cfg(root: Path, **data) -> TrainConfig:
    cfg = TrainConfig()
    cfg.data.name = f"folder:{root}"
    cfg.data.known = ["ant", "bee"]
    cfg.data.image_size = 24
    cfg.data.crop_pct = 0.75  # decoded at 32, centre-cropped to 24
    cfg.data.workers = 0
    for k, v in data.items():
        setattr(cfg.data, k, v)
    return cfg


# ---------------------------------------------------------------------- RandomResizedCrop
@pytest.mark.parametrize(
    ("h", "w", "scale", "ratio"),
    [
        (50, 70, (0.08, 1.0), (3 / 4, 4 / 3)),
        (10, 100, (0.9, 1.0), (3 / 4, 4 / 3)),
        (64, 64, (0.5, 0.6), (1, 2)),
    ],
)
def test_boxes_are_torchvisions_for_the_same_seed(h, w, scale, ratio):
    """Known answer: torchvision's get_params on the global RNG seeded alike, sample after sample (the second
    case never fits in 10 attempts and takes the centre-crop fallback)."""
    from torchvision.transforms import RandomResizedCrop

    torch.manual_seed(5)
    img = torch.zeros(3, h, w)
    want = [list(RandomResizedCrop.get_params(img, list(scale), list(ratio))) for _ in range(64)]
    got = sample_boxes(64, h, w, scale, ratio, torch.Generator().manual_seed(5)).tolist()
    assert got == want
    if h == 10:  # the fallback: full height, width at the largest ratio, centred
        assert got[0] == [0, (w - round(h * 4 / 3)) // 2, h, round(h * 4 / 3)]


@pytest.mark.parametrize("size", [24, 64, 96])  # down-, same- and up-sampling of the boxes
def test_batched_resampling_is_torchvisions_resized_crop(size):
    x = torch.randint(0, 256, (12, 3, 64, 56), dtype=torch.uint8)
    boxes = sample_boxes(12, 64, 56, generator=torch.Generator().manual_seed(1))
    got = resized_crop(x, boxes, size)
    ref = resized_crop_reference(x, boxes, size)  # torchvision's uint8 path (fixed-point weights)
    from torchvision.transforms.v2 import functional as F

    ref_float = torch.stack(
        [
            F.resized_crop(img.float(), *b, [size, size], antialias=True)
            for img, b in zip(x, boxes.tolist(), strict=True)
        ]
    )
    ref_float = ref_float.round().clamp(0, 255).to(torch.uint8)
    assert got.shape == (12, 3, size, size) and got.dtype == torch.uint8
    assert (got.int() - ref.int()).abs().max() <= 1
    diff = (got.int() - ref_float.int()).abs()
    assert diff.max() <= 1 and (diff > 0).float().mean() < 1e-3  # the float path: equal but for rounding


def test_each_sample_gets_its_own_box_and_the_crop_changes_pixels():
    x = (
        torch.arange(64, dtype=torch.uint8).repeat(64, 1).expand(8, 3, 64, 64).contiguous()
    )  # a horizontal ramp
    out = random_resized_crop(x, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert len({tuple(o[0, 0, :4].tolist()) for o in out}) > 1  # per-sample boxes, not one for the batch
    same = random_resized_crop(x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, same)


def test_augmenter_resized_backends_agree_and_keep_the_size():
    cfg = TrainConfig().augment
    cfg.crop, cfg.randaugment_n, cfg.hflip = "resized", 0, True
    x = torch.randint(0, 256, (6, 3, 40, 40), dtype=torch.uint8)
    cfg.backend = "batched"
    a = Augmenter(cfg)(x, torch.Generator().manual_seed(3))
    cfg.backend = "torchvision"
    b = Augmenter(cfg)(x, torch.Generator().manual_seed(3))
    assert a.shape == x.shape and (a.int() - b.int()).abs().max() <= 1
    assert not torch.equal(a, x)


def test_crop_options_are_validated():
    cfg = TrainConfig.from_dict({"augment": {"crop": "resized", "crop_scale": "0.2,1"}})
    assert cfg.augment.crop_scale == [0.2, 1.0]
    for bad in ({"crop": "zoom"}, {"crop_scale": [0.5, 0.2]}, {"crop_scale": [0, 1]}, {"crop_ratio": [1]}):
        with pytest.raises(DifairError, match="augment.crop"):
            TrainConfig.from_dict({"augment": bad}).validate()


def test_image_size_up_to_448():
    cfg = TrainConfig()
    cfg.data.image_size = 448
    cfg.validate()
    cfg.data.image_size = 449
    with pytest.raises(DifairError, match="<= 448"):
        cfg.validate()


# ---------------------------------------------------------------------- memory or stream
def test_stream_decodes_the_pixels_of_the_cache(tmp_path):
    root = _folder(tmp_path / "pets")
    mem = get_dataset(_cfg(root, cache="memory").data)
    stream = get_dataset(_cfg(root, cache="stream").data)
    assert isinstance(stream.train_images, StreamImages) and isinstance(mem.train_images, torch.Tensor)
    assert stream.train_images.shape == mem.train_images.shape == (8, 3, 24, 24)
    assert torch.equal(stream.train_images[torch.arange(8)], mem.train_images)
    assert torch.equal(stream.train_images[2:5], mem.train_images[2:5])
    assert torch.equal(stream.train_labels, mem.train_labels)
    assert stream.mean == mem.mean and stream.std == mem.std  # statistics from the workers' chunks
    assert torch.equal(stream.test_images, mem.test_images)
    assert stream.meta["cache"] == "stream" and mem.meta["cache"] == "memory"


def test_held_out_validation_keeps_the_stream_undecoded(tmp_path):
    root = _folder(tmp_path / "pets", per_class=6)
    mem = get_dataset(_cfg(root, cache="memory", val_fraction=0.34).data)
    stream = get_dataset(_cfg(root, cache="stream", val_fraction=0.34).data)
    assert isinstance(stream.train_images, StreamImages)
    assert torch.equal(stream.train_images[torch.arange(len(stream.train_images))], mem.train_images)
    assert torch.equal(stream.val_images, mem.val_images)


def test_prefetched_batches_come_in_the_loops_order_from_workers(tmp_path):
    root = _folder(tmp_path / "pets")
    mem = get_dataset(_cfg(root, cache="memory").data).train_images
    stream = get_dataset(_cfg(root, cache="stream", workers=2).data).train_images
    perm = torch.randperm(8, generator=torch.Generator().manual_seed(7))
    batches = [perm[0:3], perm[3:6], perm[6:8]]
    seen = []
    for idx in stream.prefetch(batches):
        assert stream._ready is not None and torch.equal(
            stream._ready[0], idx
        )  # decoded ahead, not on demand
        seen.append(stream[idx])
    assert [torch.equal(s, mem[b]) for s, b in zip(seen, batches, strict=True)] == [True] * 3


def _train(root: Path, cache: str) -> tuple[TrainConfig, list[float]]:
    from difair.engine.fit import fit

    cfg = _cfg(root, cache=cache, workers=1)
    cfg.model.backbone, cfg.model.width, cfg.epochs, cfg.batch_size = "small_cnn", 0.25, 2, 3
    cfg.augment.crop, cfg.augment.backend = "resized", "batched"
    cfg.logging.tensorboard = False
    run = root.parent / f"run-{cache}"
    fit(cfg, run, show_progress=False)
    import json

    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    saved = TrainConfig.from_yaml((run / "config.yaml").read_text())
    return saved, [r["train_loss"] for r in rows if "train_loss" in r]


def test_a_seed_trains_alike_in_memory_and_in_stream_mode(tmp_path):
    root = _folder(tmp_path / "pets")
    cfg_m, loss_m = _train(root, "memory")
    cfg_s, loss_s = _train(root, "stream")
    assert loss_m and loss_m == loss_s  # the same images in every batch, the same augmentation draws
    assert cfg_s.data.cache == "stream" and cfg_s.auto.cache == ""  # asked explicitly: nothing resolved
    assert cfg_m.digest() == cfg_s.digest()  # an execution choice, like data.root
    # the analyses of a streamed run: its training images stay undecoded, yet give the memory run's outputs
    from difair.cli import main
    from difair.viz.analysis import analyze

    streamed = analyze(root.parent / "run-stream", device="cpu")
    assert isinstance(streamed.data.train_images, StreamImages)
    torch.testing.assert_close(
        streamed.train_outputs, analyze(root.parent / "run-memory", device="cpu").train_outputs
    )
    assert main(["eval", str(root.parent / "run-stream"), "--scores", "knn,mahalanobis"]) == 0  # fit on those


def test_auto_resolves_against_the_budget_and_records_why(tmp_path):
    root = _folder(tmp_path / "pets")
    decoded = 8 * 3 * 32 * 32  # the known classes' training images at the decode side
    assert choose_cache(_cfg(root).data, decoded)[0] == "memory"  # the default budget: half the free RAM
    cfg = _cfg(root, memory_budget_gb=decoded / 1e9 * 0.99)
    resolved = resolve_cache(cfg.resolve())
    assert resolved.data.cache == "stream"
    assert (
        resolved.auto.cache.startswith("auto -> stream: decoded training images")
        and "exceed" in resolved.auto.cache
    )
    cfg = resolve_cache(_cfg(root, memory_budget_gb=decoded / 1e9).resolve())
    assert cfg.data.cache == "memory" and "fit the budget" in cfg.auto.cache
    other = resolve_cache(TrainConfig().resolve())
    assert other.data.cache == "memory" and "loaded whole" in other.auto.cache


def test_stream_needs_a_folder_dataset():
    cfg = TrainConfig()
    cfg.data.cache = "stream"
    with pytest.raises(DifairError, match="folder:PATH"):
        cfg.validate()
