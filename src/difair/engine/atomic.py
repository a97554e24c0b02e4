"""Files written whole or not at all: a temp file beside the target, fsynced, renamed over it; one-line errors
for a folder that cannot be written or a full disk."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from difair.errors import DifairError


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


def temp_beside(path: Path) -> tuple[int, str]:
    """A temp file next to ``path`` with the permissions a plain ``open`` would give."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    plain_mode(tmp)
    return fd, tmp


def _not_a_file(path: Path) -> DifairError:
    return DifairError(f"{path} is a folder: give the name of a file to write")


def cannot_write(path: Path, why: str | OSError) -> DifairError:
    """The error for a file that cannot be written: a full disk as ``out_of_space``, else what failed and the fix."""
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
    """``temp_beside``, with one line for a ``path`` that is a folder or whose folder cannot be written to."""
    if Path(path).is_dir():
        raise _not_a_file(path)
    try:
        return temp_beside(Path(path))
    except OSError as exc:
        raise cannot_write(path, exc) from exc


def check_writable(path: Path) -> None:
    """Refuse now, in the words ``atomic_write_bytes`` would use later, a file ``path`` it could not write: a
    command checks its output before the work. Nothing is left behind: a temp file is made and removed in the
    nearest folder on the way to ``path`` that exists (the write makes the ones after it)."""
    if Path(path).is_dir():
        raise _not_a_file(path)
    folder = next(p for p in Path(path).absolute().parents if p.exists())
    if not folder.is_dir():
        raise cannot_write(path, f"{folder} is a file")
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".difair-check.", suffix=".tmp")
    except OSError as exc:
        raise cannot_write(path, exc) from exc
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
        raise cannot_write(path, exc) from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")
