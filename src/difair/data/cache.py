"""Decode an image folder once into a uint8 array on disk, then memory-map it on every later load.

A cache file holds the images ``[N, C, H, W]`` of one list of files, decoded (and resized to ``size x size``
where needed) in list order. Its name carries a fingerprint of the source (relative paths, sizes and
modification times of the files, and the decoding parameters), so a changed, added or removed file yields a
new fingerprint and the cache is rebuilt; the stale file is removed. Files are written to a temporary name
and renamed, so a crash never leaves a truncated cache behind; the temp file of a decode that was killed is
removed by the next decode of the same images (a live decode holds a lock on its own).

Where caches live: ``$DIFAIR_CACHE_DIR`` if set, else ``<source>/.difair-cache`` when writable, else
``~/.cache/difair/cache``.
"""

from __future__ import annotations

import errno
import hashlib
import os
import socket
import sys
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from difair.errors import DifairError
from difair.paths import cache_home

CACHE_VERSION = 2  # 2: high-depth images scaled to 8 bits (were clipped)
# PIL modes of more than 8 bits per sample and the full-scale value of each (16-bit PNG/TIFF greyscale opens as
# I;16*, older Pillow and 32-bit TIFF as I, float TIFF as F with values in [0, 1]).
HIGH_DEPTH_FULL_SCALE = {"I;16": 65535, "I;16L": 65535, "I;16B": 65535, "I;16N": 65535, "I": 65535, "F": 1.0}
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


def is_image_file(name: str | os.PathLike[str]) -> bool:
    """True for a visible file name whose extension is a common image format."""
    base = os.path.basename(os.fspath(name))
    return os.path.splitext(base)[1].lower() in IMAGE_EXTENSIONS and not base.startswith(".")


def to_8bit(im: Image.Image, mode: str) -> Image.Image:
    """``im`` in ``mode`` (``L`` or ``RGB``) with 8 bits per sample; high-depth images are scaled, not clipped.

    PIL's own ``convert("L")`` clips a 16-bit image at 255, so the same picture saved in 16 bits would look
    saturated; here its full scale (65535 for 16-bit integers, 1.0 for floats) maps to 255.
    """
    full = HIGH_DEPTH_FULL_SCALE.get(im.mode)
    if full is not None:
        arr = np.asarray(im, dtype=np.float64) * (255.0 / full)
        im = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), mode="L")
    return im.convert(mode)


def _reserve(path: Path, label: str) -> None:
    """Allocate ``path``'s blocks now, so that a full disk is one error here, not a bus error while decoding."""
    size = path.stat().st_size
    try:
        with open(path, "r+b") as fh:
            os.posix_fallocate(fh.fileno(), 0, size)
    except AttributeError:  # no posix_fallocate on this platform
        return
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            return  # the filesystem cannot preallocate: write as before
        raise DifairError(
            f"no space for the decoded {label} cache ({size / 2**20:.0f} MiB) in {path.parent}: free space there, "
            "or set DIFAIR_CACHE_DIR to a folder with room"
        ) from exc


def list_images(folder: str | os.PathLike[str]) -> list[str]:
    """Paths (strings, cheap for 100k files) of the image files directly inside ``folder``, sorted by name.

    Entries that cannot be followed (a symlink loop, a dangling link, no permission) are skipped with a warning
    that names them.
    """
    names, bad = [], []
    with os.scandir(folder) as it:
        for e in it:
            if not is_image_file(e.name):
                continue
            try:
                if e.is_file() and os.path.exists(e.path):
                    names.append(e.name)
                elif e.is_symlink():
                    bad.append(e.name)
            except OSError:
                bad.append(e.name)
    if bad:
        warnings.warn(
            f"skipped {len(bad)} unreadable image entries in {folder} (symlink loops or dangling links), "
            f"e.g. {sorted(bad)[0]}",
            stacklevel=2,
        )
    base = os.fspath(folder)
    return [os.path.join(base, n) for n in sorted(names)]


def source_fingerprint(files: Sequence[str | os.PathLike[str]], root: Path, extra: str = "") -> str:
    """Hash of the files' paths relative to ``root``, their sizes and modification times, and ``extra``."""
    h = hashlib.sha256(f"v{CACHE_VERSION}|{extra}|{len(files)}\n".encode())
    prefix = os.path.join(os.fspath(root), "")
    for f in files:
        name = os.fspath(f)
        try:
            st = os.stat(name)
        except OSError as e:
            raise DifairError(f"cannot read image {f}: {e.strerror or e}") from e
        rel = name[len(prefix) :] if name.startswith(prefix) else os.path.relpath(name, root)
        h.update(f"{rel}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def cache_dir_for(source: Path) -> Path:
    """The cache folder for datasets under ``source``: ``$DIFAIR_CACHE_DIR``, else ``source/.difair-cache``, else
    (``source`` read-only) ``cache`` in difair's cache home (``$DIFAIR_CACHE``, ``$XDG_CACHE_HOME/difair``,
    ``~/.cache/difair``); created."""
    env = os.environ.get("DIFAIR_CACHE_DIR")
    candidates = [Path(env).expanduser()] if env else [Path(source) / ".difair-cache"]
    candidates.append(cache_home() / "cache")
    for c in candidates:
        try:
            c.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(c, os.W_OK):
            return c
    raise DifairError(
        f"no writable cache folder (tried {', '.join(map(str, candidates))}): set DIFAIR_CACHE_DIR"
    )


def decode_image(path: str | os.PathLike[str], size: int, mode: str) -> np.ndarray:
    """One image file as uint8 ``[C, size, size]`` in ``mode`` (the cache's and the stream's decode)."""
    try:
        with Image.open(path) as im:
            im = to_8bit(im, mode)
            if im.size != (size, size):
                im = im.resize((size, size), Image.Resampling.BILINEAR)
            arr = np.asarray(im, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise DifairError(f"cannot read image {path}: {e}") from e
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def decode_images(
    files: Sequence[str | os.PathLike[str]],
    size: int,
    mode: str = "RGB",
    *,
    out: np.ndarray | None = None,
    description: str = "decoding images",
    progress: bool = True,
) -> np.ndarray:
    """Decode ``files`` into uint8 ``[N, C, size, size]`` (``mode`` "RGB" or "L"), showing progress."""
    from rich.console import Console
    from rich.progress import track

    channels = {"RGB": 3, "L": 1}[mode]
    if out is None:
        out = np.empty((len(files), channels, size, size), dtype=np.uint8)
    console = Console(stderr=True)
    live = progress and console.is_terminal
    if progress and not live:
        print(f"{description} ...", file=sys.stderr, flush=True)
    for i, f in enumerate(
        track(files, description=description, transient=True, console=console, disable=not live)
    ):
        out[i] = decode_image(f, size, mode)
    return out


def _lock(fd: int, wait: bool = True) -> bool:
    """An exclusive ``flock`` on ``fd``; False when another process holds it and ``wait`` is False, or where there is
    no flock (Windows, a file system without it): a temp file nobody could lock is left to its writer."""
    try:
        import fcntl  # POSIX only
    except ImportError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except OSError:  # BlockingIOError: held; ENOSYS, ENOLCK, EOPNOTSUPP: no locks here
        return False
    return True


def _temp_prefix(prefix: str) -> str:
    """The name start of this machine's temp files for a cache: a lock on a network file system may be seen by
    this machine alone, so a sweep only judges the files of decodes that ran here."""
    host = "".join(c if c.isalnum() or c in "-_" else "_" for c in socket.gethostname())[:40] or "host"
    return f".{prefix}{host}-"


def _locked_temp(cache_dir: Path, prefix: str) -> tuple[int, Path]:
    """A new temp file for a decode and its descriptor, locked while this process lives (the kernel lets go
    however it ends). A sweep may remove the file between its creation and the lock: then another is made."""
    while True:
        fd, name = tempfile.mkstemp(prefix=_temp_prefix(prefix), suffix=".tmp", dir=cache_dir)
        if not _lock(fd):  # no locks on this file system: nothing sweeps it either
            return fd, Path(name)
        try:
            if os.path.samestat(os.fstat(fd), os.stat(name)):
                return fd, Path(name)
        except FileNotFoundError:
            pass
        os.close(fd)


def sweep_dead_decodes(cache_dir: Path, prefix: str) -> None:
    """Remove the temp files of decodes of ``prefix`` whose process ended before renaming them (killed): a live
    decode holds its file's lock, so it is left alone."""
    for tmp in cache_dir.glob(f"{_temp_prefix(prefix)}*.tmp"):
        try:
            fd = os.open(tmp, os.O_RDONLY)
        except OSError:  # gone meanwhile, or not ours to read
            continue
        try:
            if _lock(fd, wait=False):
                tmp.unlink(missing_ok=True)
        finally:
            os.close(fd)


def cached_images(
    files: Sequence[str | os.PathLike[str]],
    *,
    root: Path,
    size: int,
    label: str,
    mode: str = "RGB",
    cache_dir: Path | None = None,
    progress: bool = True,
) -> Tensor:
    """The decoded images of ``files`` as a memory-mapped uint8 tensor; decodes only a stale cache."""
    if mode not in ("RGB", "L"):
        raise ValueError(f"mode must be RGB or L, got {mode!r}")
    channels = 3 if mode == "RGB" else 1
    if not files:
        return torch.empty((0, channels, size, size), dtype=torch.uint8)
    root = Path(root)
    cache_dir = Path(cache_dir) if cache_dir is not None else cache_dir_for(root)
    cache_dir.mkdir(parents=True, exist_ok=True)
    where = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:8]
    prefix = f"{label}-{where}-{mode}{size}-"
    fp = source_fingerprint(files, root, extra=f"{mode}|{size}")[:20]
    path = cache_dir / f"{prefix}{fp}.npy"
    shape = (len(files), channels, size, size)
    if path.is_file():
        try:
            cached = np.load(path, mmap_mode="c")
            if cached.shape == shape and cached.dtype == np.uint8:
                return torch.from_numpy(cached)
        except (OSError, ValueError):
            pass
        path.unlink(missing_ok=True)  # unreadable, or not the images it is named for: rebuild it
    fd, tmp = _locked_temp(cache_dir, prefix)
    try:
        sweep_dead_decodes(cache_dir, prefix)
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        _reserve(tmp, label)  # a sparse file on a full disk kills the process (SIGBUS) at the first write
        decode_images(
            files,
            size,
            mode,
            out=arr,
            description=f"decoding {label} ({len(files)} images)",
            progress=progress,
        )
        arr.flush()
        del arr
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a cache is as readable as its source
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        os.close(fd)
    for stale in cache_dir.glob(f"{prefix}*.npy"):
        if stale != path:
            stale.unlink(missing_ok=True)
    return torch.from_numpy(np.load(path, mmap_mode="c"))
