"""Creating and replacing run folders without losing the old one.

A new run is written into a hidden sibling folder (``.RUN.difair-new-XXXXXXXX``, marked with ``difair-run.json``
and locked like a run folder) and swapped in place of ``RUN`` only once its first checkpoint is written: config
validated, data loaded, model and head built, one epoch trained. The swap is one ``renameat2(RENAME_EXCHANGE)``
on Linux (no moment without ``RUN``), elsewhere two renames undone on failure; then the old folder is deleted.
Until the swap nothing of ``RUN`` is touched, so a failed start (or ``--overwrite`` that fails) leaves it
byte-identical. ``--overwrite`` replaces only folders difair marked, or runs of earlier versions (``legacy_run``).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from difair.engine import rundir as R
from difair.errors import DifairError
from difair.version import __version__

MARKER = (
    "difair-run.json"  # written only by difair, when it creates a run folder: {"format": 1, "difair": ...}
)
MARKER_FORMAT = 1
# What difair <= 0.1.0 (before the marker) wrote into a run folder: train, eval --scores (features/), calibrate
# (threshold.json), report (report.html). A folder without the marker is taken for such a run only if it holds
# nothing else (see legacy_run).
LEGACY_NAMES = {
    R.CONFIG,
    R.METRICS,
    R.RESULTS,
    R.CHECKPOINT_DIR,
    R.THRESHOLD,
    R.FEATURES,
    R.REPORT,
    R.LOCK,
}
NEW = "difair-new"  # the staged folder's infix
OLD = "difair-old"  # where the old folder waits between the two renames of the fallback swap


def write_marker(run_dir: Path) -> None:
    """Mark ``run_dir`` as a run folder difair created (the only folders ``--overwrite`` replaces)."""
    R.write_json(run_dir / MARKER, {"format": MARKER_FORMAT, "difair": __version__})


def has_marker(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds difair's marker (``difair-run.json`` with a format version)."""
    try:
        marker = json.loads((run_dir / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and isinstance(marker.get("format"), int)


def legacy_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` (no marker) is a run of difair <= 0.1.0: a ``config.yaml`` difair reads, a
    ``checkpoints/last.pt``, and nothing besides what those versions wrote (``LEGACY_NAMES``, temp files)."""
    ckpts = run_dir / R.CHECKPOINT_DIR
    if not (run_dir / R.CHECKPOINT).is_file():
        return False
    if any(p.name not in LEGACY_NAMES and not _is_temp(p) for p in run_dir.iterdir()):
        return False
    if any(p != run_dir / R.CHECKPOINT and not _is_temp(p) for p in ckpts.iterdir()):
        return False
    try:
        R.read_run_config(run_dir)
    except DifairError:
        return False
    return True


def _is_temp(p: Path) -> bool:
    return p.is_file() and p.name.startswith(".") and p.name.endswith(".tmp")


def check_run_dir(run_dir: Path, *, resume: bool, overwrite: bool) -> bool:
    """Raise unless ``run_dir`` may be used as asked; touches nothing. Returns whether it holds files."""
    exists = R.holds_files(run_dir)
    if resume:
        if not run_dir.exists():
            raise DifairError(
                f"{run_dir} does not exist: --resume takes the folder of a run difair train started"
            )
        if not (run_dir / R.CONFIG).is_file():
            raise DifairError(f"{run_dir} holds no run to resume (no {R.CONFIG}): start it without --resume")
        return exists
    ours = exists and (has_marker(run_dir) or legacy_run(run_dir))
    if exists and not overwrite:
        raise DifairError(
            f"run folder {run_dir} already exists: continue it with --resume (fit(..., resume=True)) or replace "
            "it with --overwrite (overwrite=True)"
            if ours
            else f"{run_dir} already exists and is not a difair run folder: choose another --out"
        )
    if exists and not ours:
        raise DifairError(
            f"{run_dir} is not a difair run folder (no {MARKER}, the marker difair writes in every run folder); "
            "--overwrite replaces only those: choose another --out, or delete the folder yourself"
        )
    return exists


def remove_stale_stages(run_dir: Path) -> list[Path]:
    """Delete the staged folders of ``run_dir`` that a killed process left (``.RUN.difair-new-*``); call it while
    holding ``run_dir``'s lock: a live stager holds that lock until it ends. ``.RUN.difair-old-*`` folders (the
    fallback swap killed between its renames: possibly the only copy of the old run) are left alone."""
    pattern = re.compile(re.escape(f".{run_dir.name}.{NEW}-") + r"[A-Za-z0-9_]{8}")
    removed = []
    for p in run_dir.parent.iterdir() if run_dir.parent.is_dir() else ():
        if pattern.fullmatch(p.name) and p.is_dir() and not p.is_symlink() and not R.lock_held(p):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


def _exchange_atomically(a: Path, b: Path) -> bool:
    """Swap two paths with Linux's ``renameat2(RENAME_EXCHANGE)``; False where the system or filesystem
    cannot (then nothing was changed)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # glibc < 2.28, musl
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def exchange(new: Path, old: Path) -> None:
    """Put folder ``new`` at ``old``'s path and ``old``'s folder at ``new``'s path; on failure both are as before."""
    if _exchange_atomically(new, old):
        return
    aside = Path(tempfile.mkdtemp(dir=old.parent, prefix=f".{old.name}.{OLD}-"))
    os.replace(old, aside)  # onto the empty folder mkdtemp reserved
    try:
        os.replace(new, old)
    except BaseException:
        os.replace(aside, old)
        raise
    os.replace(aside, new)


class StagedRun:
    """A new run's folder: ``path`` is the staged sibling until ``commit`` swaps it in, then ``run_dir``."""

    def __init__(self, run_dir: Path, path: Path, lock: R.RunLock | None) -> None:
        self.run_dir, self.path, self._lock = run_dir, path, lock
        self.committed = False

    def commit(self) -> None:
        """Swap the staged folder in place of ``run_dir`` (created by its lock, or the old run), then delete the
        old one. Call it once the first checkpoint is written; later calls do nothing."""
        if self.committed:
            return
        try:
            exchange(self.path, self.run_dir)
        except OSError as exc:
            raise DifairError(
                f"cannot put the new run in place of {self.run_dir}: {exc.strerror or exc}; the old run is "
                "unchanged: check the permissions of its parent folder, or choose another --out"
            ) from exc
        if self._lock is not None:
            self._lock.path = self.run_dir / R.LOCK  # our staged lock now guards run_dir
        old, self.path, self.committed = self.path, self.run_dir, True
        shutil.rmtree(old, ignore_errors=True)  # what is left of a kill here goes with remove_stale_stages


@contextlib.contextmanager
def staged_run(run_dir: Path) -> Iterator[StagedRun]:
    """Stage a new run beside ``run_dir`` (marked, locked); on leaving, commit it if the block did not, or on an
    error delete the staged folder and leave ``run_dir`` untouched. Hold ``run_dir``'s lock around it."""
    run_dir = run_dir.resolve()  # a symlinked --out: the run is replaced where the link points
    try:
        path = Path(tempfile.mkdtemp(dir=run_dir.parent, prefix=f".{run_dir.name}.{NEW}-"))
        R.plain_mode(path, folder=True)  # mkdtemp's 0700 would keep the run from teammates and servers
    except OSError as exc:
        raise DifairError(
            f"cannot create a folder beside {run_dir}: {exc.strerror or exc}: choose a writable --out"
        ) from exc
    staged = StagedRun(run_dir, path, None)
    try:
        with R.run_lock(path) as lock:
            staged._lock = lock
            write_marker(path)
            yield staged
            staged.commit()
    finally:
        if not staged.committed:
            shutil.rmtree(path, ignore_errors=True)


class InPlace:
    """A run written where it is (a resumed run, and the ranks > 0 that write nothing): ``commit`` does nothing."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = self.path = run_dir

    def commit(self) -> None:
        pass


__all__ = ["MARKER", "check_run_dir", "has_marker", "legacy_run", "staged_run", "StagedRun", "InPlace"]
