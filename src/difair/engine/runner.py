"""Run a config into a folder idempotently: reuse a finished run, resume an interrupted one, else train.

A run counts as finished only when its ``results.json`` says its checkpoint holds the last of the config's
epochs (``"checkpoint": {"complete": true}``); results that ``difair eval`` wrote for an unfinished run are
partial, never reused: the run is resumed and its results rewritten.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from difair.config import TrainConfig
from difair.data.base import OSRData
from difair.engine import rundir as R
from difair.engine.fit import EpochCallback, fit
from difair.engine.load import checkpoint_record
from difair.errors import DifairError


def read_results(run_dir: Path) -> dict[str, Any] | None:
    """``results.json`` of a run (None if there is none); an unreadable one is one line naming the fix."""
    path = run_dir / R.RESULTS
    if not path.is_file():
        return None
    try:
        results = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise DifairError(
            f"{path} is not valid JSON ({type(exc).__name__}): difair eval {run_dir} rewrites it"
        ) from exc
    missing = [
        k
        for k in ("method", "dataset", "split", "score", "scores")
        if not isinstance(results, dict) or k not in results
    ]
    if missing:
        raise DifairError(
            f"{path} is not a difair results record (no {', '.join(missing)}): difair eval {run_dir} rewrites it"
        )
    return results


def results_checkpoint(run_dir: Path, results: dict[str, Any]) -> dict[str, Any]:
    """Which epoch of how many the checkpoint behind ``results`` holds (``load.checkpoint_record``).

    Results of difair <= 0.1.0 do not say: then the run's last checkpoint is read (weights-only) and its epoch
    taken, with ``complete`` only when it holds the last epoch (an earlier ``eval`` may have written the results
    of any checkpoint, so without one they are not complete).
    """
    record = results.get("checkpoint")
    if isinstance(record, dict) and {"epoch", "epochs", "complete"} <= set(record):
        return record
    epochs = int(results.get("epochs") or 0)
    if not (run_dir / R.CHECKPOINT).is_file():
        return {"epoch": None, "epochs": epochs, "complete": False}
    return checkpoint_record(int(R.load_checkpoint(run_dir / R.CHECKPOINT)["epoch"]) + 1, epochs)


def run_status(cfg: TrainConfig, run_dir: Path) -> str:
    """``"new"``, ``"done"`` or ``"partial"``; raises if the folder holds a run of another configuration.

    ``"done"``: results of a checkpoint that holds all of ``cfg.epochs``; results of an unfinished run (``difair
    eval`` of a killed run) are ``"partial"``.
    """
    if not (run_dir / R.CONFIG).is_file():
        if R.holds_files(run_dir):
            raise DifairError(f"{run_dir} exists and is not a difair run folder: choose another --out")
        return "new"
    saved = R.read_run_config(run_dir)
    cfg = cfg.resolve()
    if saved.epochs != cfg.epochs:
        raise DifairError(
            f"{run_dir} holds a run of {saved.epochs} epochs, not {cfg.epochs}: rerun with --epochs "
            f"{saved.epochs}, or choose another --out"
        )
    diff = saved.difference(cfg)
    if diff:
        raise DifairError(
            f"{run_dir} holds a run with other options ({diff}): choose another --out, or delete that folder"
        )
    results = read_results(run_dir)
    if results is None:
        return "partial"
    record = results_checkpoint(run_dir, results)
    return "done" if record["complete"] and record["epochs"] == cfg.epochs else "partial"


def run_or_resume(
    cfg: TrainConfig,
    run_dir: str | Path,
    *,
    data: OSRData | None = None,
    show_progress: bool = True,
    on_epoch: EpochCallback | None = None,
    cpu_processes: int = 1,
) -> tuple[dict[str, Any], str]:
    """The results of ``cfg`` in ``run_dir`` and what was done: ``"reused"``, ``"resumed"`` or ``"trained"``
    (``cpu_processes``: as in ``fit``)."""
    run_dir = Path(run_dir)
    status = run_status(cfg, run_dir)
    if status == "done":
        results = read_results(run_dir)
        assert results is not None
        return results, "reused"
    resume = status == "partial"
    results = fit(
        None if resume else cfg,
        run_dir,
        resume=resume,
        data=data,
        show_progress=show_progress,
        on_epoch=on_epoch,
        cpu_processes=cpu_processes,
    )
    return results, "resumed" if resume else "trained"
