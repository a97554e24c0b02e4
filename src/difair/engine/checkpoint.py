"""Checkpoints: written atomically, read weights-only (tensors and plain values, never code) after a checksum
check, fingerprinted by their bytes; the RNG states a checkpoint carries."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import random
import shutil
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from difair.engine.atomic import temp_beside
from difair.errors import DifairError

# numpy's array reconstruction: the numpy RNG state of checkpoints written by difair <= 0.1.0
_RECONSTRUCT = (getattr(np, "_core", None) or np.core).multiarray._reconstruct  # numpy 2 | numpy 1
_LEGACY_SAFE_GLOBALS = [
    _RECONSTRUCT,
    (_RECONSTRUCT, "numpy.core.multiarray._reconstruct"),  # the name numpy 1 pickled it under
    np.ndarray,
    np.dtype,
    type(np.dtype(np.uint32)),
]


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """``torch.save`` to a temp file and rename, so a kill never leaves a half-written checkpoint."""
    fd, tmp = temp_beside(path)
    os.close(fd)
    try:
        torch.save(state, tmp)
        with open(
            tmp, "rb"
        ) as fh:  # on disk before it replaces the last one: a power loss keeps a whole file
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:  # a full disk shows as torch's "unexpected pos" RuntimeError
        Path(tmp).unlink(missing_ok=True)
        free = shutil.disk_usage(path.parent).free
        raise DifairError(
            f"cannot write checkpoint {path} ({free / 2**20:.0f} MiB free there; {type(exc).__name__}): free "
            "space, then run the same command again (a run folder keeps its last checkpoint, which --resume "
            "continues from)"
        ) from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint's state dict, loaded weights-only: tensors and plain values, never code.

    ``torch.load(weights_only=True)`` refuses any pickled object outside its allowlist before building it, so a
    crafted file cannot run code. The allowlist adds only numpy's array reconstruction, which checkpoints of
    difair <= 0.1.0 used for the numpy RNG state.
    """
    return read_checkpoint(path)[0]


def fingerprint(chunks: Iterator[bytes] | list[bytes]) -> str:
    """A checkpoint's fingerprint: SHA-256 of its bytes, 16 hex digits (what threshold.json records)."""
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk)
    return h.hexdigest()[:16]


def file_fingerprint(path: Path) -> str:
    """``fingerprint`` of the file at ``path``, read in 1 MiB chunks."""
    with open(path, "rb") as fh:
        return fingerprint(iter(lambda: fh.read(1 << 20), b""))


def read_checkpoint(path: Path) -> tuple[dict[str, Any], str]:
    """``load_checkpoint``'s state and the fingerprint of the very bytes it was read from (SHA-256, 16 hex
    digits): a file replaced meanwhile cannot lend its fingerprint to what was computed from the old one. The
    zip archive's checksums are verified first, so flipped bytes are refused instead of loaded as weights."""
    if not path.is_file():
        raise DifairError(f"no checkpoint at {path}: train the run first (difair train ...)")
    data = path.read_bytes()
    digest = fingerprint([data])
    if zipfile.is_zipfile(io.BytesIO(data)):
        try:
            bad = zipfile.ZipFile(io.BytesIO(data)).testzip()
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError) as exc:
            bad = str(exc) or type(exc).__name__
        if bad is not None:
            raise DifairError(
                f"checkpoint {path} is damaged ({bad} fails its checksum): restore it, or retrain"
            )
    try:
        with torch.serialization.safe_globals(_LEGACY_SAFE_GLOBALS), warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message="Detected pickle protocol"
            )  # a foreign file: refused below
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" not in str(exc):  # no object was refused: a truncated or foreign file
            raise DifairError(f"cannot read checkpoint {path} (corrupt): delete it and retrain") from exc
        raise DifairError(
            f"checkpoint {path} holds objects other than tensors and plain values; refused without loading them "
            "(a file difair did not write?): delete it and retrain, or load it yourself only if you trust it"
        ) from exc
    except Exception as exc:  # truncated, corrupt or foreign file
        raise DifairError(
            f"cannot read checkpoint {path} ({type(exc).__name__}): delete it and retrain"
        ) from exc
    missing = [
        k for k in ("model", "epoch", "config_digest") if not isinstance(state, dict) or k not in state
    ]
    if missing:
        raise DifairError(
            f"checkpoint {path} is not a difair checkpoint (no {', '.join(missing)}): delete it and retrain"
        )
    return state, digest


def rng_state() -> dict[str, Any]:
    """The torch, numpy and Python RNG states as tensors and plain values (weights-only loadable)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    numpy_state = [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)]
    return {"torch": torch.get_rng_state(), "numpy": numpy_state, "python": random.getstate()}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    if not isinstance(np_state, tuple):  # this version's list; older checkpoints kept numpy's own tuple
        name, keys, pos, has_gauss, cached = np_state
        np_state = (name, np.asarray(keys, dtype=np.int64).astype(np.uint32), pos, has_gauss, cached)
    np.random.set_state(np_state)
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]) if isinstance(py, list) else py)
