"""TensorBoard event files of a run (``logging.tensorboard``), in ``RUN/tensorboard/``, written by rank 0 only.

Per epoch, every number of the epoch's ``metrics.jsonl`` row at step = the epoch counted from 1 (``epoch_tags``
names them); when the run ends, every score's OSR metrics, its known vs unknown test score histograms and its
score and ROC figures (``difair.eval.curves``) at the step of the checkpoint's epoch.

A new run opens its writer at its first epoch's log, after the staged folder was swapped in
(``difair.engine.staging``), so events never go into a folder that is later deleted and ``--overwrite`` replaces
them with the run. A resumed run appends new event files: they purge every event from the checkpoint's epoch on
(TensorBoard drops them when it reads the folder) and the checkpoint's own row is written again from
``metrics.jsonl``, so steps a killed session wrote past its checkpoint (and the final results of a finished run
that is evaluated again) never show twice.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from torch import Tensor

from difair.config import AUTO, TrainConfig
from difair.engine import rundir as R
from difair.errors import DifairError

TENSORBOARD = "tensorboard"  # the event files' folder in the run folder
FIGURE_DPI = 80  # enough to read in TensorBoard; keeps the event files and the end of a run small
_ROW_TAGS = {"lr": "optim/lr", "images_per_s": "speed/images_per_s", "epoch_time_s": "speed/epoch_time_s"}
_NOT_LOGGED = {"epoch", "epochs"}  # the step itself and the run's length


def tensorboard_installed() -> bool:
    """Whether the ``tensorboard`` package (which ``torch.utils.tensorboard`` writes through) is installed."""
    return importlib.util.find_spec("tensorboard") is not None


def tensorboard_enabled(cfg: TrainConfig) -> bool:
    """Whether the run logs to TensorBoard: ``auto`` resolves to whether the package is installed; ``true``
    without it is refused in one line."""
    wanted = cfg.logging.tensorboard
    if wanted is False:
        return False
    installed = tensorboard_installed()
    if wanted is True and not installed:
        raise DifairError(
            "logging.tensorboard=true needs the tensorboard package: pip install tensorboard, or set "
            "logging.tensorboard=auto (on when installed) or false"
        )
    assert wanted is True or wanted == AUTO
    return installed


def epoch_tags(row: dict[str, Any]) -> dict[str, float]:
    """The TensorBoard scalars of one ``metrics.jsonl`` row: ``train_X`` as ``train/X``, ``val_X`` as ``val/X``,
    ``lr`` as ``optim/lr``, speeds under ``speed/``, any other number under ``epoch/``."""
    out = {}
    for key, value in row.items():
        if key in _NOT_LOGGED or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if key in _ROW_TAGS:
            tag = _ROW_TAGS[key]
        elif key.startswith(("train_", "val_")):
            tag = key.replace("_", "/", 1)
        else:
            tag = f"epoch/{key}"
        out[tag] = float(value)
    return out


def result_tags(results: dict[str, Any]) -> dict[str, float]:
    """The TensorBoard scalars of ``results.json``: every score's metrics as ``test/SCORE/METRIC``, and the
    validation accuracy (``data.val_fraction > 0``) as ``test/validation_accuracy``."""
    out = {
        f"test/{score}/{metric}": float(value)
        for score, metrics in results.get("scores", {}).items()
        for metric, value in metrics.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    }
    validation = results.get("validation")
    if isinstance(validation, dict) and "closed_set_accuracy" in validation:
        out["test/validation_accuracy"] = float(validation["closed_set_accuracy"])
    return out


class TensorBoardLog:
    """The TensorBoard writer of one training session (a no-op when ``enabled`` is false); use it as a context
    manager so the events are flushed however the session ends.

    ``folder`` is the run's folder (``staging.StagedRun`` or ``staging.InPlace``): its ``path`` is read when the
    writer opens. ``resumed_epoch``: the epoch (from 1) of the checkpoint a resumed session starts from (0 for a
    resumed run without one), None for a new run.
    """

    def __init__(self, folder: Any, enabled: bool, resumed_epoch: int | None = None) -> None:
        self.folder, self.enabled, self.resumed_epoch = folder, enabled, resumed_epoch
        self._writer: Any = None
        self._before: set[str] = set()  # the event files there before this session's writer opened
        if enabled and resumed_epoch is not None:
            self._open()  # purge what the checkpoint does not cover, write its row again
            rows = [r for r in R.read_metrics(folder.path) if r.get("epoch") == resumed_epoch]
            if rows and resumed_epoch > 0:
                self.epoch(rows[-1])

    def _open(self) -> Any:
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter  # imports tensorboard: only when logging

            folder = Path(self.folder.path) / TENSORBOARD
            self._before = {p.name for p in folder.glob("events.*")} if folder.is_dir() else set()
            self._writer = SummaryWriter(
                log_dir=str(Path(self.folder.path) / TENSORBOARD), purge_step=self.resumed_epoch
            )
        return self._writer

    def epoch(self, row: dict[str, Any]) -> None:
        """Log one ``metrics.jsonl`` row at its epoch (from 1)."""
        if not self.enabled:
            return
        writer = self._open()
        for tag, value in epoch_tags(row).items():
            writer.add_scalar(tag, value, int(row["epoch"]))
        writer.flush()  # a row per epoch: visible in a running TensorBoard at once

    def results(
        self, results: dict[str, Any], scores: dict[str, Tensor], labels: Tensor, method: str
    ) -> None:
        """Log ``results.json``'s metrics, and per score its known/unknown test score histograms and its score
        and ROC figures, at the checkpoint's epoch."""
        if not self.enabled:
            return
        from difair.eval.curves import roc_curves_figure, score_histogram_figure  # start-up time: matplotlib

        writer = self._open()
        step = int((results.get("checkpoint") or {}).get("epoch") or results.get("epochs") or 0)
        for tag, value in result_tags(results).items():
            if math.isfinite(value):
                writer.add_scalar(tag, value, step)
        y = labels.numpy()
        known = y >= 0
        for name, values in scores.items():
            s = values.detach().double().cpu().numpy()
            writer.add_histogram(f"scores/{name}/known", s[known], step)
            if (~known).any():
                writer.add_histogram(f"scores/{name}/unknown", s[~known], step)
            fig = score_histogram_figure(s, y, name, method)
            writer.add_image(f"figures/{name}/scores", _render(fig), step, dataformats="HWC")
            if known.any() and (~known).any():
                fig = roc_curves_figure({name: s}, y, method, main=name)
                writer.add_image(f"figures/{name}/roc", _render(fig), step, dataformats="HWC")
        writer.flush()

    def close(self) -> None:
        """Flush and close the writer; an event file this session left empty (a session that failed before it
        logged anything, a full disk) is removed, so failed attempts do not pile up files."""
        if self._writer is not None:
            folder = Path(self._writer.get_logdir())
            with contextlib.suppress(OSError):  # a full disk: the error that ends the session says so
                self._writer.close()
            self._writer = None
            for p in folder.glob("events.*"):
                if p.name not in self._before and p.is_file() and p.stat().st_size == 0:
                    p.unlink(missing_ok=True)

    def __enter__(self) -> TensorBoardLog:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _render(fig: Any) -> np.ndarray:
    """A matplotlib Figure as an RGB array (Agg, no pyplot: TensorBoard's ``add_figure`` imports pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig.set_dpi(FIGURE_DPI)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


__all__ = [
    "TENSORBOARD",
    "TensorBoardLog",
    "epoch_tags",
    "result_tags",
    "tensorboard_enabled",
    "tensorboard_installed",
]
