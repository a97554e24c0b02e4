"""The run folder: its file names, its lock, its config and metrics log; the atomic writes (``engine.atomic``)
and the checkpoint functions (``engine.checkpoint``) are re-exported here, where callers look for them."""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from difair.config import TrainConfig
from difair.engine.atomic import (  # re-exported: the run folder's writes (rundir.atomic_write_text, ...)
    atomic_write_bytes,
    atomic_write_text,
    cannot_write,
    check_space,
    check_writable,
    out_of_space,
    plain_mode,
    temp_beside,
    write_json,
)
from difair.engine.checkpoint import (  # re-exported: the run folder's checkpoint (rundir.load_checkpoint, ...)
    file_fingerprint,
    fingerprint,
    load_checkpoint,
    read_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
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


def run_name(method: str, dataset: str, split: int, seed: int) -> str:
    """A run folder's name: ``<method>-<dataset>-split<k>-seed<s>`` (``folder:`` paths made safe)."""
    ds = dataset.replace(":", "_").replace("/", "_")
    return f"{method}-{ds}-split{split}-seed{seed}"


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
        raise cannot_write(run_dir / METRICS, exc) from exc


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


__all__ = [
    "CHECKPOINT",
    "CHECKPOINT_DIR",
    "CONFIG",
    "FEATURES",
    "LOCK",
    "METRICS",
    "REPORT",
    "RESULTS",
    "RUNS",
    "THRESHOLD",
    "RunLock",
    "append_metrics",
    "atomic_write_bytes",
    "atomic_write_text",
    "cannot_write",
    "check_space",
    "check_writable",
    "file_fingerprint",
    "fingerprint",
    "holds_files",
    "load_checkpoint",
    "lock_held",
    "out_of_space",
    "plain_mode",
    "read_checkpoint",
    "read_metrics",
    "read_run_config",
    "remove_stale_temps",
    "rng_state",
    "run_lock",
    "run_name",
    "save_checkpoint",
    "set_rng_state",
    "temp_beside",
    "truncate_metrics",
    "write_json",
]
