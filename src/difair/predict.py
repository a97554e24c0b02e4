"""Prediction with rejection: threshold calibration, and a ``Predictor`` for images of any size and mode.

``difair.load(run_dir).predict(images)`` returns, per image, the predicted class or ``"unknown"``, the score
(higher = more likely known), the accept/reject decision and the distances (DIFAIR, CAC) or probabilities (CE)
per class. The threshold keeps a chosen fraction of the known test images (the package has no validation split);
it is stored in ``RUN_DIR/threshold.json`` with a fingerprint of the checkpoint it was calibrated on.
"""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from difair.engine import rundir as R
from difair.engine.evaluate import collect_outputs
from difair.engine.load import LoadedRun, load_run
from difair.errors import DifairError
from difair.methods import CACMethod, CEMethod

THRESHOLD_FILE = "threshold.json"
UNKNOWN = "unknown"


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as given, else CUDA when available, else CPU."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def threshold_for_known_fraction(known_scores: Tensor | np.ndarray, keep: float = 0.95) -> float:
    """The largest threshold ``t`` such that ``score >= t`` accepts at least ``keep`` of ``known_scores``."""
    if not 0 < keep <= 1:
        raise DifairError(f"the fraction of knowns to keep must be in (0, 1], got {keep}")
    s = np.sort(np.asarray(known_scores, dtype=np.float64).ravel())[::-1]
    if s.size == 0:
        raise DifairError("threshold calibration needs at least one known sample")
    k = int(np.ceil(keep * s.size - 1e-9))
    return float(s[max(k, 1) - 1])


def checkpoint_fingerprint(run_dir: str | Path) -> str:
    """SHA-256 (first 16 hex digits) of the run's checkpoint: a calibration is valid for this file only."""
    h = hashlib.sha256()
    with open(Path(run_dir) / R.CHECKPOINT, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def read_calibration(run_dir: str | Path) -> dict[str, Any] | None:
    """The stored calibration of ``run_dir``, or None when absent or made for another checkpoint."""
    import json

    path = Path(run_dir) / THRESHOLD_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if record.get("checkpoint") != checkpoint_fingerprint(run_dir):
        return None
    return record


def needs_recenter(run: LoadedRun) -> bool:
    """A CAC run evaluated with ``cac.recenter`` whose anchors are still the initial ``alpha * e_c``."""
    if not (isinstance(run.method, CACMethod) and run.config.cac.recenter):
        return False
    head = run.model.head
    initial = torch.eye(head.num_classes) * run.method.alpha
    return bool(torch.equal(head.anchors.float().cpu(), initial))


def recenter_if_needed(run: LoadedRun, train_outputs: Tensor | None, train_labels: Tensor | None) -> None:
    """CAC runs evaluated with ``cac.recenter``: move the anchors to the class means of correct train logits
    (once: a run whose anchors were already moved is left as it is)."""
    if needs_recenter(run) and train_outputs is not None:
        run.method.recenter(run.model.head, train_outputs, train_labels)


def calibrate(
    run: str | Path | LoadedRun,
    keep: float = 0.95,
    *,
    score: str | None = None,
    data=None,
    test_outputs: Tensor | None = None,
    device: str | torch.device | None = None,
    write: bool = True,
) -> dict[str, Any]:
    """Calibrate the threshold of ``run`` on its known test images and store it in ``RUN_DIR/threshold.json``.

    ``data`` (an ``OSRData``) and ``test_outputs`` may be passed to avoid reloading and recomputing them.
    """
    run = run if isinstance(run, LoadedRun) else load_run(run)
    method, head = run.method, run.model.head
    score = score or method.default_score
    if score not in method.score_names:
        raise DifairError(
            f"method {method.name} has no score {score!r}: choose one of {', '.join(method.score_names)}"
        )
    if data is None:
        from difair.data import get_dataset

        data = get_dataset(run.config.data)
    dev = pick_device(device)
    model = run.model.to(dev)
    bs = run.config.eval_batch_size
    if needs_recenter(run):
        recenter_if_needed(run, collect_outputs(model, data.train_images, bs, dev), data.train_labels)
    if test_outputs is None:
        test_outputs = collect_outputs(model, data.test_images, bs, dev)
    run.model.cpu()
    s = method.scores(test_outputs, head.cpu())[score]
    known = data.test_labels >= 0
    t = threshold_for_known_fraction(s[known], keep)
    record = {
        "score": score,
        "threshold": t,
        "keep_known": keep,
        "calibrated_on": "test (known images; the package has no validation split)",
        "known_accepted": float((s[known] >= t).double().mean()),
        "unknown_accepted": float((s[~known] >= t).double().mean()) if (~known).any() else None,
        "n_known": int(known.sum()),
        "n_unknown": int((~known).sum()),
        "method": method.name,
        "checkpoint": checkpoint_fingerprint(run.run_dir),
        "cac_anchors": head.anchors.tolist() if isinstance(method, CACMethod) else None,
    }
    if write:
        R.write_json(Path(run.run_dir) / THRESHOLD_FILE, record)
    return record


def run_image_size(run: LoadedRun) -> int:
    """The square input size the run was trained at."""
    if run.config.data.image_size:
        return int(run.config.data.image_size)
    import json

    path = Path(run.run_dir) / R.RESULTS
    if path.is_file():
        size = json.loads(path.read_text()).get("data", {}).get("image_size")
        if size:
            return int(size)
    raise DifairError(f"cannot tell the image size of {run.run_dir}: set data.image_size or run difair eval")


# ----------------------------------------------------------------------------------------------- images
def _is_image_file(p: Path) -> bool:
    from difair.data.cache import is_image_file

    return is_image_file(p.name)


def expand_inputs(items: list[Any]) -> list[Any]:
    """Replace each folder (path) by its image files, sorted by name; other items stay as they are."""
    out: list[Any] = []
    for item in items:
        if isinstance(item, (str, os.PathLike)) and Path(item).is_dir():
            out.extend(str(p) for p in sorted(Path(item).iterdir()) if p.is_file() and _is_image_file(p))
        else:
            out.append(item)
    return out


def _from_pil(im, size: int, channels: int) -> Tensor:
    im = im.convert("L" if channels == 1 else "RGB")
    if im.size != (size, size):
        from PIL import Image

        im = im.resize((size, size), Image.Resampling.BILINEAR)
    arr = np.asarray(im, dtype=np.uint8)
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return torch.from_numpy(arr.copy()).float().div_(255)


def _from_tensor(x: Tensor, size: int, channels: int) -> Tensor:
    """One image ``[C, H, W]`` (uint8 or float in [0, 1]) -> float ``[channels, size, size]``."""
    x = x.detach().cpu()
    x = x.float().div_(255) if x.dtype == torch.uint8 else x.float()
    if x.dim() == 2:
        x = x[None]
    c = x.shape[0]
    if c in (2, 4):  # drop alpha
        x = x[: c - 1]
    if x.shape[0] == 1 and channels == 3:
        x = x.expand(3, -1, -1)
    elif x.shape[0] == 3 and channels == 1:
        x = (x * torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)).sum(0, keepdim=True)
    if x.shape[0] != channels:
        raise DifairError(f"cannot convert a {c}-channel image to {channels} channels")
    if tuple(x.shape[-2:]) != (size, size):
        x = torch.nn.functional.interpolate(x[None], (size, size), mode="bilinear", antialias=True)[0]
    return x.clamp(0, 1)


def _array_to_tensor(a: np.ndarray) -> Tensor:
    """A numpy image, HxW, HxWxC (C in 1-4) or CxHxW, uint8 or float in [0, 1] -> ``[C, H, W]`` tensor."""
    if a.dtype == np.bool_:
        a = a.astype(np.float32)
    if a.dtype != np.uint8 and not np.issubdtype(a.dtype, np.floating):
        raise DifairError(f"numpy images must be uint8 or float in [0, 1], got {a.dtype}")
    t = torch.from_numpy(np.ascontiguousarray(a))
    if t.dim() == 3 and t.shape[-1] <= 4:  # HxWxC, the numpy (PIL, OpenCV) convention
        t = t.permute(2, 0, 1)
    elif t.dim() != 2 and not (t.dim() == 3 and t.shape[0] <= 4):
        raise DifairError(f"a numpy image must be HxW, HxWxC or CxHxW, got shape {tuple(a.shape)}")
    return t


def load_images(images: Any, size: int, channels: int) -> tuple[Tensor, list[str], list[tuple[str, str]]]:
    """Images of any supported kind -> float ``[B, channels, size, size]``, their names, and skipped inputs.

    Accepts a tensor ``[B, C, H, W]`` or ``[C, H, W]``, a numpy array (one image, HxW or HxWxC), a PIL image,
    a file path, a folder, or a list of these. An unreadable file is skipped with its reason, never fatal.
    """
    from PIL import Image, UnidentifiedImageError

    if isinstance(images, Tensor) and images.dim() == 4:
        items: list[Any] = list(images)
    elif isinstance(images, (list, tuple)):
        items = list(images)
    else:
        items = [images]
    items = expand_inputs(items)
    out, names, skipped = [], [], []
    for i, item in enumerate(items):
        name = os.fspath(item) if isinstance(item, (str, os.PathLike)) else f"#{i}"
        try:
            if isinstance(item, (str, os.PathLike)):
                with Image.open(item) as im:
                    im.load()
                    out.append(_from_pil(im, size, channels))
            elif isinstance(item, Image.Image):
                out.append(_from_pil(item, size, channels))
            elif isinstance(item, np.ndarray):
                out.append(_from_tensor(_array_to_tensor(item), size, channels))
            elif isinstance(item, Tensor):
                out.append(_from_tensor(item, size, channels))
            else:
                raise DifairError(f"unsupported input type {type(item).__name__}")
        except (OSError, ValueError, SyntaxError, UnidentifiedImageError, Image.DecompressionBombError) as e:
            skipped.append(
                (name, f"cannot read image: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
            )
            continue
        except DifairError as e:
            skipped.append((name, str(e)))
            continue
        names.append(name)
    batch = torch.stack(out) if out else torch.empty(0, channels, size, size)
    return batch, names, skipped


# ----------------------------------------------------------------------------------------------- prediction
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
    per_class_kind: str  # "distance" | "probability"
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
    """A trained run ready to classify new images with rejection; see ``difair.load``."""

    def __init__(
        self,
        run: str | Path | LoadedRun,
        *,
        threshold: float | None = None,
        score: str | None = None,
        keep: float | None = None,
        device: str | torch.device | None = None,
        batch_size: int = 256,
        data=None,
    ):
        self.run = run if isinstance(run, LoadedRun) else load_run(run)
        self.method = self.run.method
        self.score_name = score or self.method.default_score
        if self.score_name not in self.method.score_names:
            raise DifairError(
                f"method {self.method.name} has no score {self.score_name!r}: "
                f"choose one of {', '.join(self.method.score_names)}"
            )
        self.device = pick_device(device)
        self.batch_size = batch_size
        self.image_size = run_image_size(self.run)
        self.channels = int(self.run.state["channels"])
        self.calibrated_now = False
        cal = read_calibration(self.run.run_dir)
        needs_cal = threshold is None or (isinstance(self.method, CACMethod) and self.run.config.cac.recenter)
        stale = (
            cal is None
            or cal.get("score") != self.score_name
            or (keep is not None and cal["keep_known"] != keep)
        )
        if needs_cal and stale:
            cal = calibrate(self.run, keep or 0.95, score=self.score_name, data=data, device=self.device)
            self.calibrated_now = True
        self.calibration = cal
        if cal is not None and cal.get("cac_anchors") is not None and isinstance(self.method, CACMethod):
            self.run.model.head.anchors.copy_(torch.tensor(cal["cac_anchors"]))
        self.threshold = float(threshold if threshold is not None else cal["threshold"])
        self.model = self.run.model.to(self.device).eval()

    @property
    def class_names(self) -> list[str]:
        return self.run.class_names

    def prepare(self, images: Any) -> tuple[Tensor, list[str], list[tuple[str, str]]]:
        """Images -> float ``[B, C, S, S]`` at the run's size and channel count, names, skipped inputs."""
        return load_images(images, self.image_size, self.channels)

    def outputs(self, batch: Tensor) -> Tensor:
        """Model outputs (on CPU) of a prepared batch."""
        return collect_outputs(self.model, batch, self.batch_size, self.device)

    def predict(self, images: Any, *, on_error: str = "skip") -> Predictions:
        """Classify ``images`` (tensors, arrays, PIL images, paths or folders) with rejection.

        ``on_error="skip"`` records unreadable inputs in ``Predictions.skipped``; ``"raise"`` raises DifairError.
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
        out = self.outputs(batch) if len(batch) else torch.empty(0, self._out_dim())
        head = self.model.head
        scores = self.method.scores(out, head)[self.score_name].cpu() if len(out) else torch.empty(0)
        nearest = self.method.predict(out, head).cpu() if len(out) else torch.empty(0, dtype=torch.long)
        if isinstance(self.method, CEMethod):
            per_class, kind = torch.softmax(out, dim=1), "probability"
        elif isinstance(self.method, CACMethod):
            per_class, kind = head.distances(out).cpu(), "distance"
        else:
            from difair.nn.functional import anchor_distances

            per_class, kind = anchor_distances(out, self.method.anchors(head).cpu()), "distance"
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

    def _out_dim(self) -> int:
        n = len(self.class_names)
        return n * getattr(self.method, "features_per_class", 1)


def load(run_dir: str | Path, **kwargs: Any) -> Predictor:
    """A ``Predictor`` for the run in ``run_dir`` (keyword arguments as ``Predictor``)."""
    return Predictor(run_dir, **kwargs)


__all__ = [
    "Predictor",
    "Predictions",
    "load",
    "calibrate",
    "read_calibration",
    "threshold_for_known_fraction",
    "load_images",
    "THRESHOLD_FILE",
]
