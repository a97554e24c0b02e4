"""folder:PATH datasets and the decode-once image cache."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from difair.config import DataConfig
from difair.data import cache as cache_mod
from difair.data.folder import load_folder
from difair.data.registry import get_dataset
from difair.errors import DifairError

CLASSES = ["ant", "bee", "cat", "dog", "eel"]


def _make_folder(root: Path, gen) -> Path:
    for split, per_class in (("train", 3), ("test", 2)):
        for i, name in enumerate(CLASSES):
            for j in range(per_class):
                gen.image(root / split / name / f"{j}.png", np.full((40, 24, 3), 40 * i + j, np.uint8))
    (root / "train" / "ant" / "notes.txt").write_text("not an image")  # ignored: not an image extension
    return root


def test_folder_known_by_name_and_index(tmp_path: Path, gen) -> None:
    path = _make_folder(tmp_path / "pets", gen)
    cfg = DataConfig(name=f"folder:{path}", known=["dog", "ant"], balance="none")
    d = load_folder(cfg, cache_dir=tmp_path / "cache")
    assert d.class_names == ["dog", "ant"] and d.image_size == 32 and d.channels == 3
    assert d.train_labels.tolist() == [1, 1, 1, 0, 0, 0]  # sorted class order in the data, list order labels
    assert set(d.train_images[:, 0, 0, 0].tolist()) <= {
        0,
        1,
        2,
        120,
        121,
        122,
    }  # no unknown class in training
    assert (d.n_known_test, d.n_unknown_test) == (4, 6)
    assert d.meta["ignored_train_classes"] == ["bee", "cat", "eel"]
    assert d.unknown_class_names == CLASSES
    cfg = DataConfig(name=f"folder:{path}", known=["3", "0"], image_size=16, balance="none")
    e = get_dataset(cfg)  # default cache folder: PATH/.difair-cache
    assert e.class_names == ["dog", "ant"] and e.image_size == 16
    assert any((path / ".difair-cache").glob("folder-train-*.npy"))


def test_known_classes_on_the_command_line_and_in_files_stay_names() -> None:
    from difair.config import TrainConfig, apply_overrides

    def known(*overrides: str) -> list[str]:
        return TrainConfig.from_dict(apply_overrides(TrainConfig().to_dict(), list(overrides))).data.known

    base = "data.name=folder:/x"
    assert known(base, "data.known=2") == ["2"]  # one index
    assert known(base, "data.known=no") == ["no"]  # YAML 1.1 would read False
    assert known(base, "data.known=[yes, no, on]") == ["yes", "no", "on"]
    assert known(base, "data.known=yes,off") == ["yes", "off"]
    cfg = TrainConfig.from_yaml("data:\n  name: folder:/x\n  known: [yes, n]\nlogging:\n  tensorboard: no\n")
    assert (
        cfg.data.known == ["yes", "n"] and cfg.logging.tensorboard is False
    )  # a boolean option takes yes/no


def test_folder_errors(tmp_path: Path, gen) -> None:
    path = _make_folder(tmp_path / "pets", gen)
    with pytest.raises(DifairError, match="data.known=NAME1,NAME2"):
        load_folder(DataConfig(name=f"folder:{path}"), cache_dir=tmp_path / "c")
    with pytest.raises(DifairError, match="'cow'"):
        load_folder(DataConfig(name=f"folder:{path}", known=["cow"]), cache_dir=tmp_path / "c")
    with pytest.raises(DifairError, match="folder dataset .*missing-place not found"):
        load_folder(DataConfig(name=f"folder:{tmp_path / 'missing-place'}", known=["a"]))
    bad = path / "test" / "cat" / "broken.jpg"
    bad.write_bytes(b"this is not a jpeg")
    with pytest.raises(DifairError, match=f"cannot read image {bad}"):
        load_folder(DataConfig(name=f"folder:{path}", known=["ant"]), cache_dir=tmp_path / "c")


def _frames(root: Path, gen, n: int = 6) -> list[str]:
    return [os.fspath(gen.image(root / f"{i}.png", np.full((8, 8), 10 * i, np.uint8))) for i in range(n)]


def test_cache_decodes_once_and_memory_maps(tmp_path: Path, gen, monkeypatch: pytest.MonkeyPatch) -> None:
    files = _frames(tmp_path / "src", gen)
    x = cache_mod.cached_images(
        files, root=tmp_path / "src", size=8, mode="L", label="t", cache_dir=tmp_path / "c"
    )
    assert x.shape == (6, 1, 8, 8) and x[:, 0, 0, 0].tolist() == [0, 10, 20, 30, 40, 50]
    (cached,) = (tmp_path / "c").glob("*.npy")
    assert np.load(cached, mmap_mode="r").shape == (6, 1, 8, 8)
    assert [p.name for p in (tmp_path / "c").iterdir()] == [cached.name]  # no temporary file left behind

    def no_decode(*a, **k):
        raise AssertionError("decoded again")

    monkeypatch.setattr(cache_mod, "decode_images", no_decode)
    y = cache_mod.cached_images(
        files, root=tmp_path / "src", size=8, mode="L", label="t", cache_dir=tmp_path / "c"
    )
    assert torch.equal(x, y)
    assert _mapped_from(y, cached)


def _mapped_from(t: torch.Tensor, path: Path) -> bool:
    """Whether the tensor's memory lies in a mapping of ``path`` (Linux /proc/self/maps)."""
    maps = Path("/proc/self/maps")
    if not maps.exists():
        pytest.skip("no /proc/self/maps to check the memory mapping")
    ptr = t.data_ptr()
    for line in maps.read_text().splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[-1] == str(path.resolve()):
            lo, hi = (int(v, 16) for v in fields[0].split("-"))
            if lo <= ptr < hi:
                return True
    return False


def test_cache_rebuilt_when_a_source_file_changes(tmp_path: Path, gen) -> None:
    files = _frames(tmp_path / "src", gen)
    kw = {"root": tmp_path / "src", "size": 8, "mode": "L", "label": "t", "cache_dir": tmp_path / "c"}
    x = cache_mod.cached_images(files, **kw)
    first = {p.name for p in (tmp_path / "c").glob("*.npy")}
    time.sleep(0.01)
    gen.image(Path(files[2]), np.full((8, 8), 255, np.uint8))  # same name, new content and mtime
    y = cache_mod.cached_images(files, **kw)
    assert x[2, 0, 0, 0] == 20 and y[2, 0, 0, 0] == 255
    second = {p.name for p in (tmp_path / "c").glob("*.npy")}
    assert len(second) == 1 and second != first  # the stale cache was replaced
    z = cache_mod.cached_images(files[:-1], **kw)  # a removed file changes the fingerprint too
    assert len(z) == 5
    big = cache_mod.cached_images(files, **{**kw, "size": 16, "mode": "RGB"})  # other parameters: own cache
    assert big.shape == (6, 3, 16, 16) and len(list((tmp_path / "c").glob("*.npy"))) == 2


def test_a_killed_decodes_temp_file_is_swept_and_a_live_ones_kept(tmp_path: Path, gen) -> None:
    fcntl = pytest.importorskip("fcntl", reason="temp files are swept where flock exists (POSIX)")
    files = _frames(tmp_path / "src", gen, n=3)
    kw = {"root": tmp_path / "src", "size": 8, "mode": "L", "label": "t", "cache_dir": tmp_path / "c"}
    cache_mod.cached_images(files, **kw)
    (cached,) = (tmp_path / "c").glob("*.npy")
    prefix = cached.name[: -len("0" * 20 + ".npy")]  # label-where-modesize-, then the source fingerprint
    prefix += cache_mod._temp_prefix("")[1:]  # and this machine's name: another's locks may not reach here
    dead = tmp_path / "c" / f".{prefix}killed.tmp"
    dead.write_bytes(b"\0" * 4096)  # its writer was killed: nobody holds its lock
    live = tmp_path / "c" / f".{prefix}live.tmp"
    live.write_bytes(b"\0" * 4096)
    other = tmp_path / "c" / ".u-00000000-L8-killed.tmp"  # another dataset's decode: not this one's to judge
    other.write_bytes(b"\0")
    elsewhere = tmp_path / "c" / f".{cached.name[: -len('0' * 20 + '.npy')]}othermachine-x.tmp"
    elsewhere.write_bytes(b"\0")  # a decode on another machine sharing the folder: its lock is not seen here
    with open(live, "rb") as holder:  # another open file: a lock this process's sweep cannot take
        fcntl.flock(holder, fcntl.LOCK_EX)
        time.sleep(0.01)
        gen.image(Path(files[1]), np.full((8, 8), 7, np.uint8))  # a changed source: decoded again
        assert cache_mod.cached_images(files, **kw)[1, 0, 0, 0] == 7
        assert not dead.exists() and live.exists() and other.exists() and elsewhere.exists()
    assert sorted(p.name for p in (tmp_path / "c").glob(f".{prefix}*.tmp")) == [live.name]  # none of its own


def test_corrupt_cache_is_rebuilt(tmp_path: Path, gen) -> None:
    files = _frames(tmp_path / "src", gen, n=3)
    kw = {"root": tmp_path / "src", "size": 8, "mode": "L", "label": "t", "cache_dir": tmp_path / "c"}
    cache_mod.cached_images(files, **kw)
    (cached,) = (tmp_path / "c").glob("*.npy")
    cached.write_bytes(b"garbage")
    assert cache_mod.cached_images(files, **kw)[1, 0, 0, 0] == 10


def test_cache_dir_env_and_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIFAIR_CACHE_DIR", str(tmp_path / "env-cache"))
    assert cache_mod.cache_dir_for(tmp_path / "data") == tmp_path / "env-cache"
    monkeypatch.delenv("DIFAIR_CACHE_DIR")
    assert cache_mod.cache_dir_for(tmp_path / "data") == tmp_path / "data" / ".difair-cache"
    source = tmp_path / "not-a-folder"
    source.write_text(
        ""
    )  # no .difair-cache can be made beside it: difair's cache home, which XDG_CACHE_HOME moves
    monkeypatch.delenv("DIFAIR_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_mod.cache_dir_for(source) == tmp_path / "xdg" / "difair" / "cache"
    monkeypatch.setenv("DIFAIR_CACHE", str(tmp_path / "home"))
    assert cache_mod.cache_dir_for(source) == tmp_path / "home" / "cache"


def test_a_file_system_without_locks_still_decodes(tmp_path: Path, gen, monkeypatch) -> None:
    import errno

    fcntl = pytest.importorskip("fcntl")

    def no_locks(*_a, **_k):  # Lustre without -o flock, some FUSE mounts
        raise OSError(errno.ENOSYS, "Function not implemented")

    files = _frames(tmp_path / "src", gen, n=3)
    kw = {"root": tmp_path / "src", "size": 8, "mode": "L", "label": "t", "cache_dir": tmp_path / "c"}
    (tmp_path / "c").mkdir()
    monkeypatch.setattr(fcntl, "flock", no_locks)
    assert cache_mod.cached_images(files, **kw)[1, 0, 0, 0] == 10
    assert len(list((tmp_path / "c").glob("*.npy"))) == 1
