"""Score distributions of known vs unknown test samples and ROC curves, with the chosen threshold marked.

The drawing lives in ``difair.eval.curves`` (shared with the TensorBoard log); this module feeds it a run analysis.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from difair.errors import DifairError
from difair.eval.curves import (
    KNOWN_COLOR,
    UNKNOWN_COLOR,
    roc_curves_figure,
    roc_points,
    score_histogram_figure,
)
from difair.viz.analysis import RunAnalysis


def _score(ra: RunAnalysis, score: str | None) -> tuple[str, np.ndarray, float]:
    name = score or ra.score_name
    if name not in ra.scores:
        raise DifairError(
            f"method {ra.method.name} has no score {name!r}: choose one of {', '.join(ra.scores)}"
        )
    return name, ra.scores[name].numpy().astype(np.float64), ra.threshold_for(name)


def score_distribution_figure(ra: RunAnalysis, score: str | None = None, bins: int = 40) -> Figure:
    """Histograms of one score for known and unknown test samples, threshold as a vertical line."""
    name, s, t = _score(ra, score)
    return score_histogram_figure(
        s, ra.data.test_labels.numpy(), name, ra.method.name, threshold=t, bins=bins
    )


def roc_figure(ra: RunAnalysis, scores: list[str] | None = None) -> Figure:
    """ROC curves of the method's scores (AUROC in the legend); each score's threshold marked as a point."""
    labels = ra.data.test_labels.numpy()
    known = labels >= 0
    if known.all() or not known.any():
        raise DifairError("a ROC curve needs known and unknown test samples")
    picked = [_score(ra, name) for name in scores or list(ra.scores)]
    return roc_curves_figure(
        {name: s for name, s, _ in picked},
        labels,
        ra.method.name,
        main=ra.score_name,
        thresholds={name: t for name, _, t in picked},
    )


__all__ = ["KNOWN_COLOR", "UNKNOWN_COLOR", "roc_points", "score_distribution_figure", "roc_figure"]
