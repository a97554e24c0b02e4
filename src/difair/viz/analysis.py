"""A run's test (and training) outputs, predictions, scores and threshold, computed once for every figure."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import torch
from torch import Tensor

from difair.data.base import OSRData
from difair.engine.evaluate import check_finite_outputs
from difair.engine.feature_cache import cached_outputs
from difair.engine.load import LoadedRun, load_run, run_data
from difair.errors import DifairError
from difair.methods import Method
from difair.predict.calibration import (
    KEEP_KNOWN,
    needs_recenter,
    pick_device,
    read_calibration,
    recenter_if_needed,
    threshold_for_known_fraction,
)


class RunAnalysis:
    """Everything the figures of one run need; build it with ``analyze``.

    ``threshold`` belongs to ``score_name``: given, else the stored calibration (``RUN_DIR/threshold.json``),
    else one keeping the fraction ``keep`` (``KEEP_KNOWN``, 0.95) of the validation images (``data.val_fraction``), or of the known
    test images without a validation set. ``threshold_for(other_score)`` reads or calibrates another score's the same way.
    """

    def __init__(
        self,
        run: LoadedRun,
        data: OSRData,
        *,
        score: str | None = None,
        threshold: float | None = None,
        keep: float | None = None,
        device: str | torch.device | None = None,
    ):
        self.run, self.data = run, data
        self.method = run.method
        self.device = pick_device(device)
        self.model = run.model.to(self.device).eval()
        self.score_name = self.method.prediction_score(score)  # an image's card scores it alone
        if needs_recenter(run):
            recenter_if_needed(run, self.train_outputs, data.train_labels)
        cal = read_calibration(run.run_dir, self.score_name, run.fingerprint or None)
        usable = cal is not None and keep in (None, cal.get("keep_known"))
        self.keep = (
            float(cal["keep_known"]) if usable and keep is None else (KEEP_KNOWN if keep is None else keep)
        )
        if threshold is not None:
            self.threshold, self.threshold_source = float(threshold), "given"
        elif usable:
            self.threshold = float(cal["threshold"])
            self.threshold_source = (
                f"stored in threshold.json: keeps {self.keep:.0%} of the known images of its calibration set, "
                f"{cal.get('calibrated_on', 'not recorded')}"
            )
        else:
            self.threshold = self._calibrate(self.score_name)
            self.threshold_source = (
                "calibrated on the validation set (known training images held out)"
                if self.data.has_validation
                else "calibrated on the known test images (no validation set: data.val_fraction=0)"
            )

    # ------------------------------------------------------------------ outputs
    def _outputs(self, images: Tensor, split: str) -> Tensor:
        """The model's outputs of ``images`` (the run's ``split``), kept in the run folder for the next analysis
        of the same checkpoint and images (``engine.feature_cache``): a card's class means need the whole
        training set."""
        batch = self.run.config.eval_batch_size
        out = cached_outputs(self.run, split, images, batch_size=batch, device=self.device)
        check_finite_outputs(out, "images")  # a diverged checkpoint: one line, not figures of NaN
        return out

    @cached_property
    def test_outputs(self) -> Tensor:
        return self._outputs(self.data.test_images, "test")

    @cached_property
    def train_outputs(self) -> Tensor:
        return self._outputs(self.data.train_images, "train")

    @cached_property
    def test_preds(self) -> Tensor:
        return self.method.predict(self.test_outputs, self.model.head).cpu()

    @cached_property
    def train_preds(self) -> Tensor:
        return self.method.predict(self.train_outputs, self.model.head).cpu()

    @cached_property
    def scores(self) -> dict[str, Tensor]:
        return {k: v.cpu() for k, v in self.method.scores(self.test_outputs, self.model.head).items()}

    @property
    def test_scores(self) -> Tensor:
        return self.scores[self.score_name]

    @property
    def accepted(self) -> Tensor:
        return self.test_scores >= self.threshold

    def threshold_for(self, score: str) -> float:
        """The threshold of ``score``: ``threshold`` for its own score; for another, the one stored for it in
        ``threshold.json`` (what ``predict --score`` uses), else one calibrated as ``threshold`` was, at ``keep``."""
        if score == self.score_name:
            return self.threshold
        cal = read_calibration(self.run.run_dir, score, self.run.fingerprint or None)
        return float(cal["threshold"]) if cal is not None else self._calibrate(score)

    @cached_property
    def val_scores(self) -> dict[str, Tensor]:
        """Every score of the validation images (empty tensors without a validation set)."""
        images = self.data.val_images if self.data.has_validation else self.data.test_images[:0]
        out = self._outputs(images, "val")
        return {k: v.cpu() for k, v in self.method.scores(out, self.model.head).items()}

    def _calibrate(self, score: str) -> float:
        """Keep ``keep`` of the validation images, or of the known test images without a validation set."""
        if self.data.has_validation:
            return threshold_for_known_fraction(self.val_scores[score], self.keep)
        known = self.data.test_labels >= 0
        return threshold_for_known_fraction(self.scores[score][known], self.keep)

    # ------------------------------------------------------------------ classes
    @property
    def class_names(self) -> list[str]:
        return list(self.data.class_names)

    @property
    def num_classes(self) -> int:
        return len(self.data.class_names)

    @property
    def class_owned_features(self) -> bool:
        """Whether output dims belong to classes (DIFAIR's z), so the class-feature figures apply."""
        return self.method.class_owned_features

    @property
    def features_per_class(self) -> int:
        return self.method.outputs_per_class

    def anchors(self) -> Tensor | None:
        """Anchors in output space (DIFAIR, CAC re-centred if so evaluated), None for CE."""
        anchors = self.method.anchors(self.model.head)
        return None if anchors is None else anchors.cpu()

    def true_name(self, index: int) -> str:
        """Class name of test sample ``index``; unknowns by their source class when known."""
        y = int(self.data.test_labels[index])
        if y >= 0:
            return self.class_names[y]
        src = self.data.test_source_labels
        names = self.data.unknown_class_names
        if src is not None and 0 <= int(src[index]) < len(names):
            return names[int(src[index])]
        return "unknown"

    def unknown_groups(self) -> tuple[list[str], Tensor]:
        """Names of the unknown source classes and, per test sample, its group (-1 for knowns)."""
        unknown = self.data.test_labels < 0
        src = self.data.test_source_labels
        if src is None or not self.data.unknown_class_names:
            return ["unknown"], torch.where(unknown, 0, -1)
        ids = sorted({int(s) for s in src[unknown]})
        lookup = {s: i for i, s in enumerate(ids)}
        group = torch.tensor([lookup[int(s)] if u else -1 for s, u in zip(src, unknown, strict=True)])
        return [self.data.unknown_class_names[s] for s in ids], group

    def class_means(self, split: str = "train", correct_only: bool = True) -> tuple[Tensor, Tensor]:
        """Per-class mean outputs ``[n_c, D]`` and counts ``[n_c]`` on ``split``; optionally correct-only."""
        if split not in ("train", "test"):
            raise DifairError(f"split must be train or test, got {split!r}")
        out, labels, preds = (
            (self.train_outputs, self.data.train_labels, self.train_preds)
            if split == "train"
            else (self.test_outputs, self.data.test_labels, self.test_preds)
        )
        means = torch.zeros(self.num_classes, out.shape[1])
        counts = torch.zeros(self.num_classes, dtype=torch.long)
        for c in range(self.num_classes):
            mask = labels == c
            if correct_only:
                mask &= preds == c
            counts[c] = int(mask.sum())
            if counts[c]:
                means[c] = out[mask].mean(0)
        return means, counts

    def group_mean(self, index: int) -> tuple[Tensor | None, int]:
        """Mean output over the test images of the same true class as test sample ``index`` (unknowns too)."""
        y = int(self.data.test_labels[index])
        if y >= 0:
            mask = self.data.test_labels == y
        elif self.data.test_source_labels is not None:
            src = self.data.test_source_labels
            mask = (self.data.test_labels < 0) & (src == src[index])
        else:
            mask = self.data.test_labels < 0
        n = int(mask.sum())
        return (self.test_outputs[mask].mean(0) if n else None), n


def analyze(
    run: str | Path | LoadedRun,
    *,
    data: OSRData | None = None,
    score: str | None = None,
    threshold: float | None = None,
    keep: float | None = None,
    device: str | torch.device | None = None,
) -> RunAnalysis:
    """Load ``run`` (a folder or a ``LoadedRun``) and its dataset (unless ``data`` is given) for analysis."""
    run = run if isinstance(run, LoadedRun) else load_run(run)
    data = run_data(run, data)
    return RunAnalysis(run, data, score=score, threshold=threshold, keep=keep, device=device)


def require_class_features(method: Method, what: str) -> None:
    """Raise a clear DifairError when a figure of class-owned features (DIFAIR) is asked of another method."""
    if not method.class_owned_features:
        raise DifairError(
            f"{what} needs a DIFAIR run (features owned by classes); this run's method is {method.name}: "
            "use predict, scores, roc, tsne, confusion or similarity instead"
        )
