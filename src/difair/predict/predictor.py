"""``Predictor``: predicted class or "unknown", score and per-class distances or probabilities per image."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from difair.data.base import OSRData
from difair.engine import rundir as R
from difair.engine.evaluate import check_finite_outputs, collect_outputs
from difair.engine.load import LoadedRun, load_run
from difair.errors import DifairError
from difair.predict.calibration import calibrate, pick_device, read_calibration, store_calibration
from difair.predict.images import prepare_images, run_image_size

UNKNOWN = "unknown"
"""The class name a ``Predictor`` gives a rejected image."""


@dataclass
class Predictions:
    """Per-image results of ``Predictor.predict``; ``labels`` holds a class name or ``"unknown"``."""

    names: list[str]
    class_names: list[str]
    outputs: Tensor  # [B, D] model outputs (z for DIFAIR, logits otherwise)
    nearest: Tensor  # [B] closed-set class index
    scores: Tensor  # [B] higher = more likely known
    accepted: Tensor  # [B] bool: score >= threshold
    per_class: Tensor  # [B, n_c] distances (difair, cac) or probabilities (ce)
    per_class_kind: str  # difair.methods.base.PER_CLASS_KINDS
    score_name: str
    threshold: float
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def class_index(self) -> Tensor:
        """Predicted class index, -1 where the image is rejected as unknown."""
        return torch.where(self.accepted, self.nearest, torch.full_like(self.nearest, -1))

    @property
    def labels(self) -> list[str]:
        return [self.class_names[int(c)] if c >= 0 else UNKNOWN for c in self.class_index]

    def rows(self) -> list[dict[str, Any]]:
        """One dict per image: path, prediction, accepted, score, nearest class, then one column per class."""
        prefix = "dist_" if self.per_class_kind == "distance" else "prob_"
        rows = []
        for i, name in enumerate(self.names):
            row: dict[str, Any] = {
                "path": name,
                "prediction": self.labels[i],
                "accepted": bool(self.accepted[i]),
                "score": round(float(self.scores[i]), 6),
                "nearest_class": self.class_names[int(self.nearest[i])],
            }
            row.update(
                {
                    prefix + c: round(float(v), 6)
                    for c, v in zip(self.class_names, self.per_class[i], strict=True)
                }
            )
            rows.append(row)
        return rows

    def write_csv(self, path: str | Path) -> None:
        """Write ``rows()`` as CSV (atomically)."""
        import io

        rows = self.rows()
        buf = io.StringIO()
        fields = list(rows[0]) if rows else ["path", "prediction", "accepted", "score", "nearest_class"]
        writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        R.atomic_write_text(Path(path), buf.getvalue())


class Predictor:
    """A trained run ready to classify new images with rejection (``predict``); ``difair.load(run_dir, ...)``
    makes one.

    - ``threshold``: the score threshold; None: calibrated, or the one stored in ``RUN/threshold.json`` for this
      checkpoint and score (a calibration made now is stored there).
    - ``score``: the score to threshold (default: the method's own, or one that does not depend on the batch).
    - ``keep``: the fraction of known calibration images a threshold calibrated now accepts; None: the stored
      calibration's fraction, else ``KEEP_KNOWN`` (0.95).
    - ``device``: cpu, cuda, ... (None: CUDA when available); ``batch_size``: images per forward pass.
    - ``data``: the run's ``OSRData``, for a run trained on data passed to ``fit(..., data=...)`` (its config
      cannot load it again) or to skip loading the dataset; read only to calibrate a threshold.
    """

    def __init__(
        self,
        run: str | Path | LoadedRun,
        *,
        threshold: float | None = None,
        score: str | None = None,
        keep: float | None = None,
        device: str | torch.device | None = None,
        batch_size: int = 256,
        data: OSRData | None = None,
    ):
        self.run = run if isinstance(run, LoadedRun) else load_run(run)
        self.method = self.run.method
        self.score_name = self.method.prediction_score(score)  # one that does not depend on the batch
        why = self.method.batch_dependent(self.method.default_score) if self.score_name != score else None
        # a run whose own score cannot be given to one image: which score predicts instead, and why
        self.score_note: str | None = (
            f"score {self.method.default_score} of this run {why}: images are scored with {self.score_name}"
            if why
            else None
        )
        self.device = pick_device(device)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise DifairError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
        self.batch_size = batch_size
        self.image_size = run_image_size(self.run)
        self.channels = int(self.run.state["channels"])
        self.calibrated_now = False
        cal = read_calibration(self.run.run_dir, self.score_name, self.run.fingerprint or None)
        needs_cal = threshold is None or self.method.prepares_evaluation
        stale = cal is None or (keep is not None and cal["keep_known"] != keep)
        # why a threshold calibrated now could not be kept in the run folder (None: stored, or not calibrated)
        self.not_stored: str | None = None
        if needs_cal and stale:
            cal = calibrate(
                self.run,
                keep,
                score=self.score_name,
                data=data,
                device=self.device,
                write=False,
            )
            self.calibrated_now = True
            try:
                store_calibration(self.run.run_dir, cal)
            except DifairError as exc:  # a read-only run folder: predict with it all the same
                self.not_stored = str(exc)
        self.calibration = cal
        if cal is not None and cal.get("cac_anchors") is not None:
            self.method.load_evaluation_state(self.run.model.head, cal["cac_anchors"])
        self.threshold = float(threshold if threshold is not None else cal["threshold"])
        self.model = self.run.model.to(self.device).eval()

    def calibration_note(self) -> str | None:
        """One line on a threshold calibrated when this predictor was made (None when it was read), and where it
        was kept."""
        if not self.calibrated_now:
            return None
        where = (
            f"stored in {self.run.run_dir}/threshold.json"
            if self.not_stored is None
            else f"used without storing it ({self.not_stored})"
        )
        return f"calibrated threshold {self.threshold:.4f} ({self.score_name}), {where}"

    @property
    def class_names(self) -> list[str]:
        return self.run.class_names

    def prepare(self, images: Any) -> tuple[Tensor, list[str], list[tuple[str, str]]]:
        """Images -> float ``[B, C, S, S]`` at the run's size and channel count, names, skipped inputs; framed as
        the run's data were (``data.crop_pct``: resized larger, then centre-cropped)."""
        return prepare_images(images, self.image_size, self.channels, self.run.config.data.crop_pct)

    def outputs(self, batch: Tensor) -> Tensor:
        """Model outputs (on CPU) of a prepared batch."""
        out = collect_outputs(self.model, batch, self.batch_size, self.device)
        check_finite_outputs(out, "images")  # no prediction (nor acceptance) from a diverged checkpoint
        return out

    def predict(self, images: Any, *, on_error: str = "skip") -> Predictions:
        """Classify ``images`` (tensors, arrays, PIL images, paths or folders) with rejection.

        ``on_error="skip"`` records unreadable files in ``Predictions.skipped``; ``"raise"`` raises DifairError.
        In-memory inputs that are not images (wrong shape or dtype, floats outside [0, 1]) always raise.
        """
        if on_error not in ("skip", "raise"):
            raise ValueError("on_error must be 'skip' or 'raise'")
        batch, names, skipped = self.prepare(images)
        if skipped and on_error == "raise":
            raise DifairError(f"{skipped[0][0]}: {skipped[0][1]}")
        return self.predict_prepared(batch, names, skipped)

    @torch.no_grad()
    def predict_prepared(
        self, batch: Tensor, names: list[str] | None = None, skipped: list[tuple[str, str]] | None = None
    ) -> Predictions:
        """Predictions for a batch already at the run's size (``prepare``'s output)."""
        out = self.outputs(batch) if len(batch) else torch.empty(0, self.method.output_dim)
        head = self.model.head
        scores = self.method.scores(out, head)[self.score_name].cpu() if len(out) else torch.empty(0)
        nearest = self.method.predict(out, head).cpu() if len(out) else torch.empty(0, dtype=torch.long)
        per_class, kind = self.method.per_class(out, head).cpu(), self.method.per_class_kind
        return Predictions(
            names=list(names or [f"#{i}" for i in range(len(batch))]),
            class_names=self.class_names,
            outputs=out,
            nearest=nearest,
            scores=scores,
            accepted=scores >= self.threshold,
            per_class=per_class,
            per_class_kind=kind,
            score_name=self.score_name,
            threshold=self.threshold,
            skipped=list(skipped or []),
        )


def load(run_dir: str | Path, **kwargs: Any) -> Predictor:
    """A ``Predictor`` for the run in ``run_dir``; keyword arguments (``threshold``, ``score``, ``keep``,
    ``device``, ``batch_size``, ``data``) as ``Predictor``'s."""
    return Predictor(run_dir, **kwargs)
