"""The run folder: resolved config, metrics log, checkpoints and results, written atomically."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import pickle
import random
import shutil
import socket
import tempfile
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from difair.config import TrainConfig
from difair.errors import DifairError

CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
RESULTS = "results.json"
CHECKPOINT_DIR = "checkpoints"
CHECKPOINT = f"{CHECKPOINT_DIR}/last.pt"
LOCK = ".lock"  # held (flock) while a process trains the run
FEATURES = "features"  # what analyses computed, kept for the next one (difair.engine.feature_cache)
THRESHOLD = "threshold.json"  # the calibrated thresholds (difair.predict.calibration)
REPORT = "report.html"  # difair report's page (difair.viz.report)
RUNS = "runs"  # the run folders of a benchmark or demo folder: OUT/runs/NAME
# numpy's array reconstruction: the numpy RNG state of checkpoints written by difair <= 0.1.0
_RECONSTRUCT = (getattr(np, "_core", None) or np.core).multiarray._reconstruct  # numpy 2 | numpy 1
_LEGACY_SAFE_GLOBALS = [
    _RECONSTRUCT,
    (_RECONSTRUCT, "numpy.core.multiarray._reconstruct"),  # the name numpy 1 pickled it under
    np.ndarray,
    np.dtype,
    type(np.dtype(np.uint32)),
]


def run_name(method: str, dataset: str, split: int, seed: int) -> str:
    """A run folder's name: ``<method>-<dataset>-split<k>-seed<s>`` (``folder:`` paths made safe)."""
    ds = dataset.replace(":", "_").replace("/", "_")
    return f"{method}-{ds}-split{split}-seed{seed}"


def plain_mode(path: str | os.PathLike[str], folder: bool = False) -> None:
    """Give a ``tempfile``-made file or folder (private: 0600 / 0700) the mode a plain ``open``/``mkdir`` would
    give under the process's umask, so that a run folder is as readable as any other folder of its owner."""
    os.chmod(path, (0o777 if folder else 0o666) & ~_umask())


def _umask() -> int:
    """The process's umask, read without changing it (Linux: /proc/self/status) where possible."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o022)  # elsewhere: set and restore at once
    os.umask(umask)
    return umask


def _temp_beside(path: Path) -> tuple[int, str]:
    """A temp file next to ``path`` with the permissions a plain ``open`` would give."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    plain_mode(tmp)
    return fd, tmp


def _not_a_file(path: Path) -> DifairError:
    return DifairError(f"{path} is a folder: give the name of a file to write")


def _cannot_write(path: Path, why: str | OSError) -> DifairError:
    if isinstance(why, OSError) and why.errno in (errno.ENOSPC, errno.EDQUOT):
        return out_of_space(Path(path).parent, f"writing {path}")
    text = (why.strerror or str(why)) if isinstance(why, OSError) else why
    return DifairError(f"cannot write {path}: {text}: choose a writable folder for it")


def out_of_space(folder: Path, what: str, need: int | None = None) -> DifairError:
    """The error for a full disk (or quota): what failed, the space left and, where known, the space needed."""
    try:
        free = f"{shutil.disk_usage(folder).free / 2**20:.1f} MiB free"
    except OSError:
        free = "no space left"
    needs = f", {need / 2**20:.1f} MiB needed" if need is not None else ""
    return DifairError(
        f"no space left on the device of {folder} ({free}{needs}) for {what}: free space, then run the same "
        "command again; what was written before is unchanged"
    )


def check_space(folder: Path, need: int, what: str) -> None:
    """Refuse to start ``what`` in ``folder`` with less than ``need`` bytes free (a checkpoint's rewrite)."""
    if shutil.disk_usage(folder).free < need:
        raise out_of_space(folder, what, need)


def _open_temp(path: Path) -> tuple[int, str]:
    """``_temp_beside``, with one line for a ``path`` that is a folder or whose folder cannot be written to."""
    if Path(path).is_dir():
        raise _not_a_file(path)
    try:
        return _temp_beside(Path(path))
    except OSError as exc:
        raise _cannot_write(path, exc) from exc


def check_writable(path: Path) -> None:
    """Refuse now, in the words ``atomic_write_bytes`` would use later, a file ``path`` it could not write: a
    command checks its output before the work. Nothing is left behind: a temp file is made and removed in the
    nearest folder on the way to ``path`` that exists (the write makes the ones after it)."""
    if Path(path).is_dir():
        raise _not_a_file(path)
    folder = next(p for p in Path(path).absolute().parents if p.exists())
    if not folder.is_dir():
        raise _cannot_write(path, f"{folder} is a file")
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".difair-check.", suffix=".tmp")
    except OSError as exc:
        raise _cannot_write(path, exc) from exc
    os.close(fd)
    Path(tmp).unlink(missing_ok=True)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, then rename over ``path``."""
    fd, tmp = _open_temp(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:  # a full disk shows at write or fsync: one line naming the file, the old one kept
        Path(tmp).unlink(missing_ok=True)
        raise _cannot_write(path, exc) from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """``torch.save`` to a temp file and rename, so a kill never leaves a half-written checkpoint."""
    fd, tmp = _temp_beside(path)
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


class RunLock:
    """A held run lock: the open, ``flock``-ed file and where it lies now (a staged run moves it, see
    ``difair.engine.staging``)."""

    def __init__(self, path: Path, fh: Any) -> None:
        self.path, self.fh = path, fh

    def release(self) -> None:
        """Remove the lock file (while still holding it, so that a waiter sees a replaced file) and let go."""
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == os.fstat(self.fh.fileno()).st_ino:  # ours, not a successor's
                self.path.unlink()
        self.fh.close()


def lock_held(folder: Path) -> bool:
    """Whether a live process holds ``folder``'s run lock now (a staged run being written, a run training)."""
    try:
        import fcntl
    except ImportError:
        return False
    try:
        with open(folder / LOCK) as fh:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released when the file closes
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return False


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[RunLock | None]:
    """Hold ``run_dir/.lock`` while a process trains the run; a second process is refused in one line.

    An exclusive ``flock``: the kernel releases it when its process ends, however it ends, so the lock of a
    killed run is never stale (its file may stay behind, unheld). The file holds the holder's pid for the message
    and is removed when the block ends. POSIX only; elsewhere no lock (and None is yielded).
    """
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks here
        yield None
        return
    if run_dir.is_symlink() and not run_dir.exists():
        raise DifairError(f"{run_dir} is a dangling link, not a run folder: choose another path")
    if run_dir.exists() and not run_dir.is_dir():
        raise DifairError(f"{run_dir} is a file, not a run folder: choose another path")
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK
    for _ in range(3):  # the file may be replaced between open and flock by a holder that just finished
        fh = open(path, "a+")  # noqa: SIM115 (held for the whole block)
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise DifairError(
                f"{run_dir} is in use by {holder} (training or evaluating it): wait for it to finish, or stop it "
                "(a stopped training continues with --resume)"
            ) from None
        try:
            same = os.fstat(fh.fileno()).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        fh.close()
    else:
        raise DifairError(f"cannot lock {path}: another process keeps replacing it")
    lock = RunLock(path, fh)
    try:
        fh.seek(0)
        fh.truncate()
        fh.write(f"process {os.getpid()} on {socket.gethostname()}")
        fh.flush()
        yield lock
    finally:
        lock.release()


def remove_stale_temps(run_dir: Path) -> list[Path]:
    """Delete the temp files (``.NAME.*.tmp``) an atomic write left when its process was killed; call it while
    holding ``run_lock``, so that no writer is active. Returns what was removed."""
    removed = []
    for folder in (run_dir, run_dir / CHECKPOINT_DIR, run_dir / FEATURES):
        if folder.is_dir():
            for p in folder.glob(".*.tmp"):
                if p.is_file():
                    p.unlink(missing_ok=True)
                    removed.append(p)
    return removed


def holds_files(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds anything besides a lock file."""
    return run_dir.is_dir() and any(p.name != LOCK for p in run_dir.iterdir())


def read_run_config(run_dir: Path) -> TrainConfig:
    path = run_dir / CONFIG
    if not path.is_file():
        raise DifairError(f"{run_dir} is not a difair run folder (no {CONFIG})")
    try:
        text = path.read_text()
        if not text.strip():  # defaults would stand in for the run's options
            raise DifairError("the file is empty: restore it, or retrain the run with --overwrite")
        cfg = TrainConfig.from_yaml(text)
        cfg.validate()  # a hand-edited value is named, not reported as "another configuration"
        return cfg
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DifairError(
            f"{path} is not valid YAML ({type(exc).__name__}): restore it, or retrain the run with --overwrite"
        ) from exc
    except DifairError as exc:
        raise DifairError(f"{path}: {exc}") from exc


def append_metrics(run_dir: Path, row: dict[str, Any]) -> None:
    """Append one epoch's row to ``metrics.jsonl`` (a row cut short by a full disk is skipped when read)."""
    try:
        with open(run_dir / METRICS, "a") as fh:
            fh.write(json.dumps(row) + "\n")
    except OSError as exc:
        raise _cannot_write(run_dir / METRICS, exc) from exc


def _epoch_number(row: Any) -> int | None:
    """The epoch (from 1) of a metrics row; rows of difair <= 0.1.0 (no ``epochs`` field) counted from 0."""
    if not isinstance(row, dict) or type(row.get("epoch")) is not int:
        return None
    return row["epoch"] if "epochs" in row else row["epoch"] + 1


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The rows of ``metrics.jsonl`` in order; lines that are not a row (torn by a kill, edited) are skipped."""
    path = run_dir / METRICS
    rows = []
    if path.is_file():
        for ln in path.read_text(errors="replace").splitlines():
            try:
                row = json.loads(ln)
            except ValueError:
                continue
            if _epoch_number(row) is not None:
                rows.append(row)
    return rows


def truncate_metrics(run_dir: Path, done: int) -> None:
    """Keep the metric rows of the first ``done`` epochs, those the checkpoint covers: rows written before a kill
    for later epochs and lines that are not a row (torn by a kill during its append) are dropped."""
    path = run_dir / METRICS
    if not path.is_file():
        return
    text = path.read_text(errors="replace")
    keep = []
    for ln in text.splitlines():
        try:
            number = _epoch_number(json.loads(ln))
        except ValueError:
            continue
        if number is not None and number <= done:
            keep.append(ln)
    new = "".join(ln + "\n" for ln in keep)
    if new != text:  # a file that needs no change is not rewritten
        atomic_write_text(path, new)
