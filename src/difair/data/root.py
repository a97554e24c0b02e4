"""Where datasets live on disk: one policy for every loader."""

from __future__ import annotations

import os
from pathlib import Path

from difair.config import DataConfig


def default_root(cfg: DataConfig | None = None) -> Path:
    """Where datasets are looked for: ``data.root``, else $DIFAIR_DATA, else ~/.cache/difair-data."""
    if cfg is not None and cfg.root:
        return Path(cfg.root).expanduser()
    env = os.environ.get("DIFAIR_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "difair-data"
