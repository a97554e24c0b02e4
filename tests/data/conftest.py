"""Fixtures for the data tests: generated files in the benchmarks' exact on-disk formats, and the real data.

Real data: $DIFAIR_DATA, else ~/.cache/difair-data; when absent, the project's prepare-data tool (if present)
unpacks it once per session into a temporary folder; otherwise the tests that need it skip.
"""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from difair.data.cifar import CIFAR10_CLASSES

REPO = Path(__file__).resolve().parents[2]


class Py2Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Writes ``bytes`` as Python 2 ``str`` (BINSTRING), like the CIFAR pickles made with Python 2 cPickle.

    Loaded with ``encoding="latin1"`` (torchvision) the keys become ``str``; with ``encoding="bytes"`` they
    stay ``b'data'``, ``b'labels'``... as in the official files.
    """

    dispatch = pickle._Pickler.dispatch.copy()  # type: ignore[attr-defined]

    def save_py2_str(self, obj: bytes) -> None:
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def dump_py2(obj: object, path: Path) -> None:
    with open(path, "wb") as f:
        Py2Pickler(f, protocol=2).dump(obj)


def _images(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """Rows of 3072 uint8 (R plane, G plane, B plane), first red value = label, to trace samples."""
    data = rng.integers(0, 256, size=(len(labels), 3072), dtype=np.uint8)
    data[:, 0] = labels
    return data


def write_cifar10(root: Path, train_per_class: int, test_per_class: int, seed: int = 0) -> Path:
    """``root/cifar-10-batches-py`` in the official format (5 train batches, test_batch, batches.meta)."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    train_labels = np.repeat(np.arange(10), train_per_class)
    rng.shuffle(train_labels)
    for b, chunk in enumerate(np.array_split(train_labels, 5), start=1):
        batch = {
            b"batch_label": f"training batch {b} of 5".encode(),
            b"labels": [int(v) for v in chunk],
            b"data": _images(rng, chunk),
            b"filenames": [f"img_{b}_{i}.png".encode() for i in range(len(chunk))],
        }
        dump_py2(batch, folder / f"data_batch_{b}")
    test_labels = np.repeat(np.arange(10), test_per_class)
    rng.shuffle(test_labels)
    test = {
        b"batch_label": b"testing batch 1 of 1",
        b"labels": [int(v) for v in test_labels],
        b"data": _images(rng, test_labels),
        b"filenames": [f"test_{i}.png".encode() for i in range(len(test_labels))],
    }
    dump_py2(test, folder / "test_batch")
    meta = {
        b"num_cases_per_batch": 10000,
        b"label_names": [n.encode() for n in CIFAR10_CLASSES],
        b"num_vis": 3072,
    }
    dump_py2(meta, folder / "batches.meta")
    return folder


CIFAR100_NAMES = [f"fine{i:02d}" for i in range(100)]


def write_cifar100(root: Path, train_per_class: int, test_per_class: int, seed: int = 1) -> Path:
    """``root/cifar-100-python/{train,test,meta}`` in the official format."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        fine = np.repeat(np.arange(100), per_class)
        rng.shuffle(fine)
        entry = {
            b"filenames": [f"{split}_{i}.png".encode() for i in range(len(fine))],
            b"batch_label": f"{split}ing batch 1 of 1".encode(),
            b"fine_labels": [int(v) for v in fine],
            b"coarse_labels": [int(v) // 5 for v in fine],
            b"data": _images(rng, fine),
        }
        dump_py2(entry, folder / split)
    meta = {b"fine_label_names": [n.encode() for n in CIFAR100_NAMES], b"coarse_label_names": [b"c"] * 20}
    dump_py2(meta, folder / "meta")
    return folder


@pytest.fixture(scope="session")
def cifar_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CIFAR-10 and CIFAR-100 pickles with the real test sizes (1,000 and 100 per class), small train sets."""
    root = tmp_path_factory.mktemp("cifar")
    write_cifar10(root, train_per_class=20, test_per_class=1000)
    write_cifar100(root, train_per_class=1, test_per_class=100)
    return root


@pytest.fixture(scope="session")
def real_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The unpacked shared datasets (MNIST raw, cifar10-jpeg, tiny-imagenet-200 lite), or a skip."""
    env = os.environ.get("DIFAIR_DATA")
    for c in [Path(env).expanduser()] if env else [Path.home() / ".cache" / "difair-data"]:
        if any((c / sub).is_dir() for sub in ("MNIST", "cifar10-jpeg", "tiny-imagenet-200")):
            return c
    for tool in (Path("/work/shared/tools/prepare-data"), REPO.parent / "shared" / "tools" / "prepare-data"):
        if tool.is_file() and os.access(tool, os.X_OK):
            dest = tmp_path_factory.mktemp("difair-data")
            try:
                subprocess.run([str(tool), str(dest)], check=True, capture_output=True, timeout=300)
            except (OSError, subprocess.SubprocessError) as e:
                pytest.skip(f"real data absent and {tool} failed: {e}")
            return dest
    pytest.skip("real data absent: set DIFAIR_DATA or run ../shared/tools/prepare-data ~/.cache/difair-data")


def _need(root: Path, sub: str) -> Path:
    path = root / sub
    if not path.exists():
        pytest.skip(f"{path} absent")
    return path


@pytest.fixture(scope="session")
def real_mnist(real_data: Path) -> Path:
    """The data root holding MNIST/raw, or a skip."""
    _need(real_data, "MNIST/raw/t10k-labels-idx1-ubyte")
    return real_data


@pytest.fixture(scope="session")
def real_cifar10_jpeg(real_data: Path) -> Path:
    """The data root holding cifar10-jpeg/, or a skip."""
    _need(real_data, "cifar10-jpeg/test")
    return real_data


@pytest.fixture(scope="session")
def real_tiny(real_data: Path) -> Path:
    """The data root holding tiny-imagenet-200/, or a skip."""
    _need(real_data, "tiny-imagenet-200/wnids.txt")
    return real_data


def write_image(path: Path, array: np.ndarray) -> Path:
    """Save a uint8 HxW or HxWx3 array as an image file (format from the suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


@pytest.fixture(scope="session")
def gen() -> SimpleNamespace:
    """Writers of test files in the datasets' exact formats."""
    return SimpleNamespace(
        cifar10=write_cifar10,
        cifar100=write_cifar100,
        image=write_image,
        py2=dump_py2,
        cifar100_names=CIFAR100_NAMES,
    )
