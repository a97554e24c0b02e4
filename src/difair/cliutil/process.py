"""What the ``difair`` process does around a command: SIGTERM handled as Ctrl-C, difair's warnings as one line
each, and one line for an error that is not a ``DifairError``."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

from difair.errors import Terminated


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into ``Terminated`` in the main thread while a command runs; the old handler comes back after."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM"):
        yield
        return

    def terminated(signum: int, frame: object) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def one_line_warnings() -> Iterator[None]:
    """difair's own warnings as ``difair: warning: ...`` on stderr, each text once per command (two code paths that
    list the same folder would print it twice); other libraries' warnings as Python prints them."""
    shown: set[str] = set()
    package = str(Path(__file__).resolve().parents[1])  # the difair package

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001 (warnings' signature)
        if not os.path.realpath(filename).startswith(
            package
        ):  # also when difair is imported through a symlink
            return default(message, category, filename, lineno, file, line)
        text = " ".join(str(message).split())
        if text not in shown:
            shown.add(text)
            print(f"difair: warning: {text}", file=sys.stderr)
        return None

    default = warnings.showwarning
    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = default


def describe_error(exc: BaseException) -> str:
    """One line for an error that is not a ``DifairError``: the file and what to do where there is one."""
    first = (str(exc).strip().splitlines() or [""])[0]
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        where = f" for {exc.filename}" if exc.filename else ""
        return f"no space left on the device{where}: free space, then run the same command again"
    if isinstance(exc, OSError):
        where = f" {exc.filename}" if exc.filename else ""
        what = exc.strerror or first or type(exc).__name__
        return f"cannot use{where}: {what}: check the path, that it is a writable folder or file as asked, and its permissions"
    if isinstance(exc, json.JSONDecodeError):
        return (
            f"a JSON file is not valid ({first}): a file difair wrote was changed or cut short; "
            "difair eval RUN rewrites results.json"
        )
    return (
        f"{type(exc).__name__}: {first} (rerun with --debug for the traceback, and report it if it is a bug)"
    )
