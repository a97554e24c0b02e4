"""CIFAR10 and CIFAR+N through torchvision's loaders on generated pickles, and the real CIFAR-10 JPEG tree."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from difair.config import DataConfig
from difair.data.cifar import CIFAR10_CLASSES, CIFAR_PLUS_OFFSET, load_cifar10, load_cifar_plus
from difair.data.normalization import reference_stats
from difair.data.splits import CIFAR_PLUS_UNKNOWN, NEAL_CIFAR_PLUS_UNKNOWN, VAZE_KNOWN
from difair.errors import DifairError


def _cfg(root: Path, name: str = "cifar10", **kw) -> DataConfig:
    return DataConfig(name=name, root=str(root), **kw)


def test_generated_pickles_have_the_official_keys(cifar_root: Path) -> None:
    with open(cifar_root / "cifar-10-batches-py" / "test_batch", "rb") as f:
        entry = pickle.load(f, encoding="bytes")
    assert {b"data", b"labels", b"filenames", b"batch_label"} <= set(entry)
    assert entry[b"data"].shape == (10000, 3072) and entry[b"data"].dtype == np.uint8
    with open(cifar_root / "cifar-100-python" / "meta", "rb") as f:
        assert b"fine_label_names" in pickle.load(f, encoding="bytes")
    with open(cifar_root / "cifar-100-python" / "test", "rb") as f:
        assert {b"data", b"fine_labels", b"coarse_labels", b"filenames"} <= set(
            pickle.load(f, encoding="bytes")
        )


@pytest.mark.parametrize("split", [0, 2])
def test_cifar10_split_remap_and_balance(cifar_root: Path, split: int) -> None:
    d = load_cifar10(_cfg(cifar_root, split=split), verify=False)
    known = VAZE_KNOWN["cifar10"][split]
    assert d.class_names == [CIFAR10_CLASSES[c] for c in known]
    assert d.meta["cifar10_source"] == "pickles" and d.meta["known_source_classes"] == known
    # the generator writes each sample's source label into its first red pixel
    train_src = d.train_images[:, 0, 0, 0].long()
    assert torch.equal(train_src, torch.tensor(known)[d.train_labels])
    assert len(d.train_labels) == 6 * 20 and set(train_src.tolist()) == set(known)
    # 6,000 known test images, 4,000 unknown: the known set is cut to 4,000 without replacement
    assert (d.n_known_test, d.n_unknown_test) == (4000, 4000)
    assert torch.equal(d.test_images[:, 0, 0, 0].long(), d.test_source_labels)
    unknown = d.test_labels < 0
    assert set(d.test_source_labels[unknown].tolist()) == set(range(10)) - set(known)
    assert torch.equal(torch.tensor(known)[d.test_labels[~unknown]], d.test_source_labels[~unknown])
    assert d.unknown_class_names == CIFAR10_CLASSES


def test_cifar10_md5_check_is_on_by_default(cifar_root: Path) -> None:
    with pytest.raises(DifairError, match="CIFAR-10 at .*cifar-10-batches-py fails torchvision.s md5 check"):
        load_cifar10(_cfg(cifar_root))


@pytest.mark.parametrize(("n", "sizes"), [(10, (1000, 1000)), (50, (4000, 4000))])
def test_cifar_plus_real_test_sizes_balance(cifar_root: Path, n: int, sizes: tuple[int, int]) -> None:
    # CIFAR-10 test: 1,000 per class -> 4,000 known;
    # CIFAR-100 test: 100 per class -> 1,000 (+10) or 5,000 (+50) unknown
    d = load_cifar_plus(_cfg(cifar_root, f"cifar+{n}", split=1, cifar_plus_known="vehicles"), n, verify=False)
    assert (d.n_known_test, d.n_unknown_test) == sizes
    assert d.class_names == ["airplane", "automobile", "ship", "truck"]
    unknown_src = d.test_source_labels[d.test_labels < 0]
    fine = CIFAR_PLUS_UNKNOWN[n][1]
    assert set((unknown_src - CIFAR_PLUS_OFFSET).tolist()) == set(fine)
    assert torch.equal(d.test_images[d.test_labels < 0, 0, 0, 0].long(), unknown_src - CIFAR_PLUS_OFFSET)
    assert len(d.unknown_class_names) == 200 and d.unknown_class_names[:10] == CIFAR10_CLASSES
    assert d.unknown_class_names[CIFAR_PLUS_OFFSET + fine[0]] == f"fine{fine[0]:02d}"
    assert d.meta["unknown_source_offset"] == CIFAR_PLUS_OFFSET and d.meta["cifar_plus_known"] == "vehicles"
    assert set(d.train_images[:, 0, 0, 0].tolist()) == {0, 1, 8, 9}


def test_cifar_plus_known_split_lists_and_balance_modes(cifar_root: Path) -> None:
    # the default is the paper's (and the authors') setting: the four vehicles on every split
    assert load_cifar_plus(_cfg(cifar_root, "cifar+10", split=0), 10, verify=False).meta[
        "known_source_classes"
    ] == [
        0,
        1,
        8,
        9,
    ]
    cfg = _cfg(cifar_root, "cifar+10", split=0, balance="none", cifar_plus_known="split")
    d = load_cifar_plus(cfg, 10, verify=False)
    assert d.meta["known_source_classes"] == [4, 7, 9, 1]  # Vaze/ARPL's split-0 list
    assert (d.n_known_test, d.n_unknown_test) == (4000, 1000)
    cfg.balance = "with_replacement"
    d = load_cifar_plus(cfg, 10, verify=False)
    assert (d.n_known_test, d.n_unknown_test) == (1000, 1000)


def test_cifar_plus_neal_family(cifar_root: Path) -> None:
    d = load_cifar_plus(_cfg(cifar_root, "cifar+10", split=3, split_family="neal"), 10, verify=False)
    assert d.meta["known_source_classes"] == [0, 1, 8, 9]
    assert d.meta["unknown_source_classes"] == NEAL_CIFAR_PLUS_UNKNOWN[10][3]
    with pytest.raises(DifairError, match="no lists for 'cifar\\+50'"):
        load_cifar_plus(_cfg(cifar_root, "cifar+50", split_family="neal"), 50, verify=False)


def test_cifar_reference_normalization(cifar_root: Path) -> None:
    d = load_cifar10(_cfg(cifar_root, split=2, normalization="reference"), verify=False)
    assert (d.mean, d.std) == reference_stats("cifar10", 2)
    assert d.meta["normalization"] == "reference" and d.meta["normalization_matches_classes"] is True
    d = load_cifar_plus(_cfg(cifar_root, "cifar+10", normalization="reference"), 10, verify=False)
    assert d.meta["normalization_matches_classes"] is True  # the vehicles, as the authors' constants
    cfg = _cfg(cifar_root, "cifar+10", normalization="reference", cifar_plus_known="split")
    d = load_cifar_plus(cfg, 10, verify=False)
    assert d.meta["normalization_matches_classes"] is False  # the constants belong to the vehicle classes


def test_cifar100_missing_names_the_place(tmp_path: Path, cifar_root: Path) -> None:
    with pytest.raises(DifairError, match=f"CIFAR-100 .* not found at {re.escape(str(tmp_path))}"):
        load_cifar_plus(_cfg(tmp_path, "cifar+10"), 10, verify=False)


def _jpeg_tree(root: Path, gen, classes: list[str]) -> None:
    for split in ("train", "test"):
        for name in classes:
            idx = CIFAR10_CLASSES.index(name) if name in CIFAR10_CLASSES else 12
            for i in range(2):
                gen.image(
                    root / "cifar10-jpeg" / split / name / f"{i:04d}.png",
                    np.full((32, 32, 3), idx * 20, np.uint8),
                )


def test_cifar10_jpeg_tree_maps_folders_by_name(tmp_path: Path, gen) -> None:
    assert sorted(CIFAR10_CLASSES) == CIFAR10_CLASSES  # sorted folder order and the standard indices coincide
    _jpeg_tree(tmp_path, gen, list(reversed(CIFAR10_CLASSES)))
    d = load_cifar10(_cfg(tmp_path, split=3), cache_dir=tmp_path / "cache")
    known = VAZE_KNOWN["cifar10"][3]
    assert d.meta["cifar10_source"] == "jpeg"
    assert torch.equal(d.train_images[:, 0, 0, 0].long(), torch.tensor(known)[d.train_labels] * 20)
    assert torch.equal(d.test_images[:, 1, 5, 5].long(), d.test_source_labels * 20)


def test_cifar10_jpeg_tree_with_wrong_classes(tmp_path: Path, gen) -> None:
    _jpeg_tree(tmp_path, gen, [*CIFAR10_CLASSES[:9], "lorry"])
    with pytest.raises(DifairError, match="one folder per CIFAR-10 class"):
        load_cifar10(_cfg(tmp_path), cache_dir=tmp_path / "cache")


def test_real_cifar10_jpeg(real_cifar10_jpeg: Path) -> None:
    tree = real_cifar10_jpeg / "cifar10-jpeg"
    assert sorted(p.name for p in (tree / "train").iterdir() if p.is_dir()) == CIFAR10_CLASSES
    d = load_cifar10(_cfg(real_cifar10_jpeg, split=0))
    assert (len(d.train_labels), d.n_known_test, d.n_unknown_test) == (30000, 4000, 4000)
    assert d.train_images.shape[1:] == (3, 32, 32) and d.meta["cifar10_source"] == "jpeg"
    assert torch.bincount(d.train_labels).tolist() == [5000] * 6
    assert 0.4 < d.mean[0] < 0.55 and 0.2 < d.std[0] < 0.3
