"""Tiny ImageNet: index conventions on the real wnids.txt, a generated official layout, the download."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from difair.config import DataConfig
from difair.data import tinyimagenet as tin
from difair.data.splits import VAZE_KNOWN
from difair.errors import DifairError

DIFAIR_SPLIT0 = [
    "jinrikisha",
    "beach wagon",
    "guinea pig",
    "pay-phone",
    "gondola",
    "Christmas stocking",
    "birdhouse",
    "teddy",
    "tractor",
    "mashed potato",
    "apron",
    "brown bear",
    "neck brace",
    "chain",
    "lesser panda",
    "binoculars",
    "trolleybus",
    "tabby",
    "reel",
    "barn",
]


def test_real_wnids_orders_select_different_classes(real_tiny: Path) -> None:
    folder = real_tiny / "tiny-imagenet-200"
    by_line = tin.tinyimagenet_wnids(folder, "wnids")
    by_name = tin.tinyimagenet_wnids(folder, "sorted")
    assert len(by_line) == 200 and sorted(by_line) == by_name and by_line != by_name
    assert by_line[1] == "n04067472" and tin.tinyimagenet_names(folder, [by_line[1]]) == ["reel"]
    assert by_name[1] == "n01629819" and by_name.index("n04067472") == 139
    known = VAZE_KNOWN["tinyimagenet"][0]
    assert {by_line[c] for c in known} != {by_name[c] for c in known}
    assert tin.tinyimagenet_names(folder, [by_line[c] for c in known]) == DIFAIR_SPLIT0
    with pytest.raises(DifairError, match="tinyimagenet_order"):
        tin.tinyimagenet_wnids(folder, "random")


def test_real_tinyimagenet_lite(real_tiny: Path) -> None:
    d = tin.load_tinyimagenet(
        DataConfig(name="tinyimagenet", root=str(real_tiny), tinyimagenet_order="wnids")
    )
    assert d.class_names == DIFAIR_SPLIT0 and d.image_size == 64 and d.channels == 3
    assert (d.n_known_test, d.n_unknown_test) == (1000, 1000)  # 20 x 50 known; 9,000 unknown cut to 1,000
    assert len(d.train_labels) == 20 * len(
        list((real_tiny / "tiny-imagenet-200/train/n04067472/images").iterdir())
    )
    assert d.meta["tinyimagenet_order"] == "wnids" and d.meta["known_wnids"][18] == "n04067472"
    s = tin.load_tinyimagenet(DataConfig(name="tinyimagenet", root=str(real_tiny), image_size=32))
    assert (
        s.class_names[:2] == ["gondola", "sewing machine"] and s.class_names[18] == "European fire salamander"
    )
    assert s.image_size == 32 and s.meta["tinyimagenet_order"] == "sorted"


def _make_tiny(root: Path, gen, rng: np.random.Generator) -> list[str]:
    folder = root / "tiny-imagenet-200"
    wnids = [f"n{9000000 - 7 * i:08d}" for i in range(200)]  # line order is not sorted order
    (folder / "val" / "images").mkdir(parents=True)
    (folder / "wnids.txt").write_text("\n".join(wnids) + "\n")
    words = ["n00000001\tentity"] + [f"{w}\tthing {i}, other name" for i, w in enumerate(wnids)]
    (folder / "words.txt").write_text("\n".join(words) + "\n")
    notes = []
    for i, w in enumerate(wnids):
        gray = i % 50 == 0  # a few grayscale JPEGs, as in the real set
        shape = (64, 64) if gray else (64, 64, 3)
        gen.image(
            folder / "train" / w / "images" / f"{w}_0.JPEG", rng.integers(0, 256, shape, dtype=np.uint8)
        )
        (folder / "train" / w / f"{w}_boxes.txt").write_text("")
        for j in range(2):
            name = f"val_{2 * i + j}.JPEG"
            gen.image(folder / "val" / "images" / name, np.full(shape, 100, np.uint8))
            notes.append(f"{name}\t{w}\t0\t0\t63\t63")
    (folder / "val" / "val_annotations.txt").write_text("\n".join(notes) + "\n")
    return wnids


def test_generated_tiny_layout_orders_and_grayscale(tmp_path: Path, gen) -> None:
    wnids = _make_tiny(tmp_path, gen, np.random.default_rng(0))
    cfg = DataConfig(
        name="tinyimagenet", root=str(tmp_path), tinyimagenet_order="wnids", split=2, balance="none"
    )
    d = tin.load_tinyimagenet(cfg, cache_dir=tmp_path / "cache")
    known = VAZE_KNOWN["tinyimagenet"][2]
    assert d.class_names == [f"thing {c}" for c in known]
    assert d.meta["known_wnids"] == [wnids[c] for c in known]
    assert (len(d.train_labels), d.n_known_test, d.n_unknown_test) == (20, 40, 360)
    assert d.train_images.shape[1:] == (3, 64, 64)
    gray_val = d.test_images[d.test_source_labels == 0]  # wnids[0] is stored grayscale
    assert len(gray_val) == 2 and torch.equal(gray_val[:, 0], gray_val[:, 2])
    cfg.tinyimagenet_order = "sorted"
    s = tin.load_tinyimagenet(cfg, cache_dir=tmp_path / "cache")
    assert s.meta["known_wnids"] == [sorted(wnids)[c] for c in known] != d.meta["known_wnids"]
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 2  # one cache serves both conventions


def test_download_helper_fetches_the_official_zip(
    tmp_path: Path, gen, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torchvision.datasets.utils as tv_utils

    calls = []

    def fake_download(url: str, download_root: str, md5: str | None = None, **kw) -> None:
        calls.append((url, md5))
        _make_tiny(Path(download_root), gen, np.random.default_rng(1))

    monkeypatch.setattr(tv_utils, "download_and_extract_archive", fake_download)
    with pytest.raises(DifairError, match="Tiny ImageNet .*not found.*data.download=true"):
        tin.load_tinyimagenet(DataConfig(name="tinyimagenet", root=str(tmp_path)))
    d = tin.load_tinyimagenet(
        DataConfig(name="tinyimagenet", root=str(tmp_path), download=True), cache_dir=tmp_path / "c"
    )
    assert (
        calls
        == [(tin.TINY_URL, tin.TINY_MD5)]
        == [("http://cs231n.stanford.edu/tiny-imagenet-200.zip", tin.TINY_MD5)]
    )
    assert d.num_classes == 20
