"""Where difair keeps what it computes for later (timing probes, decoded datasets): one cache home for all."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_home"]


def cache_home() -> Path:
    """difair's cache folder: ``$DIFAIR_CACHE``, else ``$XDG_CACHE_HOME/difair``, else ``~/.cache/difair``."""
    if os.environ.get("DIFAIR_CACHE"):
        return Path(os.environ["DIFAIR_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "difair"
