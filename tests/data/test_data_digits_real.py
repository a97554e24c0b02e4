"""SVHN from a generated .mat in the official format; MNIST from the real raw files; missing-data errors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from difair.config import DataConfig
from difair.data.normalization import reference_stats
from difair.data.registry import get_dataset
from difair.data.splits import VAZE_KNOWN
from difair.data.svhn import load_svhn
from difair.errors import DifairError


def _write_svhn(folder: Path, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)  # official layout: [H, W, C, N]
    digits = np.arange(n) % 10
    y = np.where(digits == 0, 10, digits).astype(np.uint8).reshape(n, 1)  # digit 0 is stored as 10
    folder.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(folder / ("train_32x32.mat" if seed == 0 else "test_32x32.mat"), {"X": x, "y": y})
    return x, digits


def test_svhn_from_official_mat_format(tmp_path: Path) -> None:
    x_train, y_train = _write_svhn(tmp_path / "svhn", 200, seed=0)
    x_test, y_test = _write_svhn(tmp_path / "svhn", 100, seed=1)
    cfg = DataConfig(name="svhn", root=str(tmp_path), split=3, balance="none")
    d = load_svhn(cfg, verify=False)
    known = VAZE_KNOWN["svhn"][3]
    assert d.class_names == [str(c) for c in known] and d.image_size == 32 and d.channels == 3
    assert len(d.train_labels) == 20 * 6 and (d.n_known_test, d.n_unknown_test) == (60, 40)
    # image i of the loader is X[:, :, :, i] transposed to [C, H, W]; label 10 became digit 0
    idx = np.flatnonzero(np.isin(y_train, known))
    assert torch.equal(d.train_images, torch.from_numpy(x_train[..., idx].transpose(3, 2, 0, 1)))
    assert torch.equal(torch.tensor(known)[d.train_labels], torch.from_numpy(y_train[idx]))
    assert 0 in d.test_source_labels.tolist()
    unknown = d.test_labels < 0
    assert set(d.test_source_labels[unknown].tolist()) == set(range(10)) - set(known)
    with pytest.raises(
        DifairError, match="SVHN at .*train_32x32.mat fails torchvision.s md5 check .*data.download=true"
    ):
        load_svhn(cfg)


def test_svhn_labels_outside_the_digits_are_refused(tmp_path: Path) -> None:
    import scipy.io

    _write_svhn(tmp_path / "svhn", 20, seed=0)
    x, y = _write_svhn(tmp_path / "svhn", 20, seed=1)
    mat = scipy.io.loadmat(tmp_path / "svhn" / "test_32x32.mat")
    mat["y"][3, 0] = 11  # no digit: it used to vanish from the split silently
    scipy.io.savemat(tmp_path / "svhn" / "test_32x32.mat", {"X": mat["X"], "y": mat["y"]})
    with pytest.raises(DifairError, match="test_32x32.mat holds labels outside 1..10"):
        load_svhn(DataConfig(name="svhn", root=str(tmp_path), balance="none"), verify=False)


def test_svhn_reference_normalization_uses_sqrt_of_stored_value(tmp_path: Path) -> None:
    _write_svhn(tmp_path / "svhn", 100, seed=0)
    _write_svhn(tmp_path / "svhn", 50, seed=1)
    d = load_svhn(DataConfig(name="svhn", root=str(tmp_path), normalization="reference"), verify=False)
    assert d.mean == [0.4377, 0.4438, 0.4728]
    assert d.std == pytest.approx([0.1980**0.5, 0.2010**0.5, 0.1970**0.5])  # the authors' effective divisor


@pytest.mark.parametrize("name", ["mnist", "svhn", "cifar10", "cifar+10", "tinyimagenet"])
def test_missing_dataset_is_one_line_naming_place_and_fix(tmp_path: Path, name: str) -> None:
    with pytest.raises(DifairError) as err:
        get_dataset(DataConfig(name=name, root=str(tmp_path)))
    msg = str(err.value)
    assert "\n" not in msg and str(tmp_path) in msg and "not found" in msg
    assert "--set data.root=PATH" in msg and "--set data.download=true" in msg
    from difair.data.build import PREPARE_TOOL

    assert ("prepare-data" in msg) == (
        name in ("mnist", "cifar10", "tinyimagenet") and PREPARE_TOOL.is_file()
    )


def test_real_mnist(real_mnist: Path) -> None:
    d = get_dataset(DataConfig(name="mnist", root=str(real_mnist), split=1))
    known = VAZE_KNOWN["mnist"][1]
    assert d.channels == 1 and d.image_size == 32 and d.train_images.dtype == torch.uint8
    counts = torch.bincount(d.train_labels, minlength=6).tolist()
    assert sum(counts) == len(d.train_labels) and all(5000 < c < 7000 for c in counts)
    assert set(d.test_source_labels[d.test_labels < 0].tolist()) == set(range(10)) - set(known)
    assert d.n_known_test == d.n_unknown_test == int((d.test_labels < 0).sum())
    assert re.search(r"MNIST/raw$", d.meta["source_paths"][0])
    assert 0.1 < d.mean[0] < 0.17
    d = get_dataset(
        DataConfig(name="mnist", root=str(real_mnist), split=1, normalization="reference", image_size=28)
    )
    assert d.image_size == 28 and (d.mean, d.std) == reference_stats("mnist", 1)


def test_digits_are_framed_with_crop_pct_as_prediction_frames_them() -> None:
    # digits once resized on its own path and ignored data.crop_pct, while predict/export centre-cropped new images
    from sklearn.datasets import load_digits

    from difair.data.framing import resize_crop_uint8

    whole = get_dataset(DataConfig(name="digits", balance="none"))
    crop = get_dataset(DataConfig(name="digits", balance="none", crop_pct=0.5))
    assert crop.meta["crop_pct"] == 0.5 and whole.meta["crop_pct"] == 1.0
    assert torch.equal(
        crop.train_labels, whole.train_labels
    ) and crop.train_images.shape == whole.train_images.shape == (len(whole.train_labels), 1, 16, 16)
    raw = torch.from_numpy(np.round(load_digits().images * (255 / 16)).astype(np.uint8)[:, None])
    for d, pct in (
        (whole, None),
        (crop, 0.5),
    ):  # each training image is the raw digit framed as predict frames it
        framed = resize_crop_uint8(raw, 16, pct)
        hits = [
            (framed == d.train_images[i]).flatten(1).all(1).any().item()
            for i in range(0, len(d.train_labels), 97)
        ]
        assert all(hits)
    assert not torch.equal(crop.train_images, whole.train_images)


def test_the_development_machines_data_tool_is_named_only_where_it_exists(
    tmp_path: Path, monkeypatch
) -> None:
    from difair.data.build import missing_dataset

    monkeypatch.chdir(tmp_path)  # no ../shared/tools here: a user's machine
    assert "prepare-data" not in str(missing_dataset("MNIST", tmp_path, prepared=True))
    tool = tmp_path / "shared" / "tools" / "prepare-data"
    tool.parent.mkdir(parents=True)
    tool.write_text("")
    (tmp_path / "repo").mkdir()
    monkeypatch.chdir(tmp_path / "repo")
    assert "unpack it with ../shared/tools/prepare-data DEST" in str(
        missing_dataset("MNIST", tmp_path, prepared=True)
    )
