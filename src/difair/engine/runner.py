"""Run a config into a folder idempotently: reuse a finished run, resume an interrupted one, else train."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from difair.config import TrainConfig
from difair.data.base import OSRData
from difair.engine import rundir as R
from difair.engine.fit import EpochCallback, fit
from difair.errors import DifairError


def run_status(cfg: TrainConfig, run_dir: Path) -> str:
    """``"new"``, ``"done"`` or ``"partial"``; raises if the folder holds a run of another configuration."""
    if not (run_dir / R.CONFIG).is_file():
        if R.holds_files(run_dir):
            raise DifairError(f"{run_dir} exists and is not a difair run folder: choose another --out")
        return "new"
    saved = R.read_run_config(run_dir)
    if saved.digest() != cfg.resolve().digest():
        raise DifairError(
            f"{run_dir} holds a run with other options: choose another --out, or delete that folder"
        )
    return "done" if (run_dir / R.RESULTS).is_file() else "partial"


def run_or_resume(
    cfg: TrainConfig,
    run_dir: str | Path,
    *,
    data: OSRData | None = None,
    show_progress: bool = True,
    on_epoch: EpochCallback | None = None,
) -> tuple[dict[str, Any], str]:
    """The results of ``cfg`` in ``run_dir`` and what was done: ``"reused"``, ``"resumed"`` or ``"trained"``."""
    run_dir = Path(run_dir)
    status = run_status(cfg, run_dir)
    if status == "done":
        return json.loads((run_dir / R.RESULTS).read_text()), "reused"
    resume = status == "partial"
    results = fit(
        None if resume else cfg,
        run_dir,
        resume=resume,
        data=data,
        show_progress=show_progress,
        on_epoch=on_epoch,
    )
    return results, "resumed" if resume else "trained"
