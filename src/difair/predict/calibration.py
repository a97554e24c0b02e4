"""Threshold calibration: the score threshold that keeps a chosen fraction of known samples, stored with the run."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from difair.data.base import OSRData
from difair.devices import pick_device
from difair.engine import rundir as R
from difair.engine.evaluate import check_finite_outputs, collect_outputs, prepare_evaluation
from difair.engine.load import LoadedRun, load_run, run_data
from difair.errors import DifairError

THRESHOLD_FILE = R.THRESHOLD
"""Where ``calibrate`` stores the threshold in a run folder: ``RUN_DIR/threshold.json``."""
KEEP_KNOWN = 0.95
"""The fraction of known calibration images a threshold accepts unless told otherwise (``--keep``)."""


def threshold_for_known_fraction(known_scores: Tensor | np.ndarray, keep: float = KEEP_KNOWN) -> float:
    """The largest threshold ``t`` such that ``score >= t`` accepts at least ``keep`` of ``known_scores``."""
    if not 0 < keep <= 1:
        raise DifairError(f"the fraction of knowns to keep must be in (0, 1], got {keep}")
    s = np.sort(np.asarray(known_scores, dtype=np.float64).ravel())[::-1]
    if s.size == 0:
        raise DifairError("threshold calibration needs at least one known sample")
    if not np.isfinite(s).all():
        raise DifairError(
            f"{int((~np.isfinite(s)).sum())} of {s.size} known scores are not finite: the checkpoint diverged; "
            "retrain it (e.g. with a lower optim.lr) before calibrating"
        )
    k = int(np.ceil(keep * s.size - 1e-9))
    return float(s[max(k, 1) - 1])


def checkpoint_fingerprint(run_dir: str | Path) -> str:
    """The fingerprint of the run's checkpoint file (``rundir.fingerprint``): a calibration is valid for it only."""
    return R.file_fingerprint(Path(run_dir) / R.CHECKPOINT)


OTHER_SCORES = "others"  # threshold.json: the records of the other scores calibrated on this checkpoint


def _stored(run_dir: str | Path, checkpoint: str | None = None) -> dict[str, Any] | None:
    """The whole ``threshold.json`` of ``run_dir``, or None when absent, unreadable or for another checkpoint than
    ``checkpoint`` (a fingerprint; default: the checkpoint file's now)."""
    path = Path(run_dir) / THRESHOLD_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not _valid(record) or record.get("checkpoint") != (checkpoint or checkpoint_fingerprint(run_dir)):
        return None
    return record


def _valid(record: Any) -> bool:
    """Whether a threshold.json record holds what a threshold needs (an edited or damaged one is recalibrated)."""
    if not isinstance(record, dict):
        return False
    t, keep = record.get("threshold"), record.get("keep_known")
    number = (int, float)
    return (
        isinstance(record.get("score"), str)
        and isinstance(t, number) and not isinstance(t, bool) and math.isfinite(t)
        and isinstance(keep, number) and not isinstance(keep, bool) and 0 < keep <= 1
    )  # fmt: skip


def read_calibration(
    run_dir: str | Path, score: str | None = None, checkpoint: str | None = None
) -> dict[str, Any] | None:
    """The stored calibration of ``score`` (default: the last one calibrated) in ``run_dir``, or None when there is
    none for this score and checkpoint (``checkpoint``: a loaded run's fingerprint; default: the file's now)."""
    record = _stored(run_dir, checkpoint)
    if record is None:
        return None
    others = record.pop(OTHER_SCORES, None)
    if score is None or record.get("score") == score:
        return record
    other = others.get(score) if isinstance(others, dict) else None
    return other if _valid(other) and other.get("checkpoint") == record["checkpoint"] else None


def store_calibration(run_dir: str | Path, record: dict[str, Any]) -> None:
    """Write ``record`` as the run's current calibration; those of other scores on its checkpoint are kept."""
    old = _stored(run_dir, record["checkpoint"])
    others: dict[str, Any] = {}
    if old is not None:
        kept = old.pop(OTHER_SCORES, None)
        others = {k: v for k, v in kept.items() if isinstance(v, dict)} if isinstance(kept, dict) else {}
        others[str(old.get("score"))] = old
    others.pop(record["score"], None)
    R.write_json(Path(run_dir) / THRESHOLD_FILE, {**record, **({OTHER_SCORES: others} if others else {})})


def needs_recenter(run: LoadedRun) -> bool:
    """Whether the run's method still has to prepare its head for evaluation (a CAC run evaluated with
    ``cac.recenter`` whose anchors are still the initial ``alpha * e_c``)."""
    return run.method.needs_train_outputs(run.model.head)


def recenter_if_needed(run: LoadedRun, train_outputs: Tensor | None, train_labels: Tensor | None) -> None:
    """Prepare the run's head for evaluation from the training outputs (CAC: move the anchors to the class means
    of correct train logits), once: a head already prepared is left as it is."""
    if needs_recenter(run) and train_outputs is not None:
        run.method.prepare_evaluation(run.model.head, train_outputs, train_labels)


CALIBRATE_ON = ("auto", "val", "test")


@dataclass
class CalibrationScores:
    """The scores a calibration needs: of the calibration images, of the test images, and where they come from."""

    calibration: Tensor  # the known images the threshold is chosen on
    test: Tensor  # every test image
    known: Tensor  # bool mask of the known test images
    where: str
    split: str = "test"  # "val" or "test": which images ``calibration`` holds


def calibrate(
    run: str | Path | LoadedRun,
    keep: float | None = None,
    *,
    score: str | None = None,
    data: OSRData | None = None,
    test_outputs: Tensor | None = None,
    device: str | torch.device | None = None,
    write: bool = True,
    on: str = "auto",
) -> dict[str, Any]:
    """Calibrate the threshold of ``run`` and store it in ``RUN_DIR/threshold.json`` (beside the calibrations of
    the run's other scores, which are kept), accepting the fraction ``keep`` of the known calibration images
    (None: ``KEEP_KNOWN``).

    ``on``: ``val`` (the known training images held out by ``data.val_fraction``), ``test`` (the known test
    images), or ``auto`` (val when the run has a validation set). ``data`` (an ``OSRData``) and ``test_outputs``
    may be passed to avoid reloading and recomputing them.
    """
    if on not in CALIBRATE_ON:
        raise DifairError(f"calibrate on 'auto', 'val' or 'test', got {on!r}")
    run = run if isinstance(run, LoadedRun) else load_run(run)
    score = run.method.prediction_score(score)  # a threshold is for images scored one batch at a time
    scores = calibration_scores(run, score, data, test_outputs, pick_device(device), on)
    record = calibration_record(run, score, KEEP_KNOWN if keep is None else keep, scores)
    if write:
        store_calibration(run.run_dir, record)
    return record


def calibration_scores(
    run: LoadedRun, score: str, data: OSRData | None, test_outputs: Tensor | None, dev: torch.device, on: str
) -> CalibrationScores:
    """Score the calibration and test images with ``score`` (after the method's evaluation preparation)."""
    method, head = run.method, run.model.head
    data = run_data(run, data)
    model = run.model.to(dev)
    bs = run.config.eval_batch_size
    prepare_evaluation(model, head, method, data, bs, dev)  # CAC: anchors on the class means, as eval does
    if on == "val" and not data.has_validation:
        raise DifairError(
            f"{run.run_dir} has no validation set: train with --set data.val_fraction=0.1, or calibrate --on test"
        )
    use_val = data.has_validation and on != "test"
    val_outputs = collect_outputs(model, data.val_images, bs, dev) if use_val else None
    if test_outputs is None:
        test_outputs = collect_outputs(model, data.test_images, bs, dev)
    run.model.cpu()
    check_finite_outputs(test_outputs)
    if val_outputs is not None:
        check_finite_outputs(val_outputs, "validation images")
    s = method.scores(test_outputs, head.cpu())[score]
    known = data.test_labels >= 0
    if use_val:
        cal = method.scores(val_outputs, head)[score]
        where = f"validation ({len(cal)} known training images held out, data.val_fraction={run.config.data.val_fraction})"
    else:
        cal = s[known]
        where = "test (known test images; train with data.val_fraction > 0 to calibrate on held-out images)"
    return CalibrationScores(cal, s, known, where, "val" if use_val else "test")


def calibration_record(run: LoadedRun, score: str, keep: float, scores: CalibrationScores) -> dict[str, Any]:
    """The ``threshold.json`` record: the threshold keeping ``keep`` of the calibration knowns, and its effect."""
    cal, s, known = scores.calibration, scores.test, scores.known
    t = threshold_for_known_fraction(cal, keep)
    return {
        "score": score,
        "threshold": t,
        "keep_known": keep,
        "calibrated_on": scores.where,
        "calibration_set": scores.split,  # "val" | "test": calibrated_on in one word
        "n_calibration": len(cal),
        "calibration_known_accepted": float((cal >= t).double().mean()),
        "known_accepted": float((s[known] >= t).double().mean()),  # on the known test images
        "unknown_accepted": float((s[~known] >= t).double().mean()) if (~known).any() else None,
        "n_known": int(known.sum()),
        "n_unknown": int((~known).sum()),
        "method": run.method.name,
        "checkpoint": run.fingerprint or checkpoint_fingerprint(run.run_dir),  # of what the outputs came from
        "cac_anchors": run.method.evaluation_state(run.model.head),  # re-centred CAC anchors (None otherwise)
    }
