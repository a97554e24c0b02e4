"""Score distributions of known vs unknown test samples and ROC curves, drawn from arrays.

The one owner of these figures: ``difair.viz.curves`` draws them for a run analysis (threshold marked) and the
engine's TensorBoard log (``difair.engine.tensorboard``) for a run that just finished training. Figures are made
without pyplot (no global state, headless).
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from difair.errors import DifairError
from difair.eval.metrics import auroc

KNOWN_COLOR, UNKNOWN_COLOR = "#2166ac", "#d6604d"


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")  # as difair.viz.style.new_figure


def roc_points(scores: np.ndarray, known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ROC of known-vs-unknown detection: (unknowns accepted, knowns accepted) over all thresholds."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(known.astype(int), scores, drop_intermediate=False)
    return fpr, tpr


def score_histogram_figure(
    scores: np.ndarray,
    labels: np.ndarray,
    name: str,
    method: str,
    threshold: float | None = None,
    bins: int = 40,
) -> Figure:
    """Histograms of one score for known (``labels >= 0``) and unknown test samples; ``threshold`` (if given) as
    a vertical line."""
    s = np.asarray(scores, dtype=np.float64)
    known = np.asarray(labels) >= 0
    fig = _figure(8, 4.6)
    ax = fig.add_subplot(label="scores")
    edges = np.histogram_bin_edges(s, bins=bins)
    ax.hist(s[known], bins=edges, alpha=0.6, color=KNOWN_COLOR, label=f"known ({known.sum()})", density=True)
    ax.hist(
        s[~known],
        bins=edges,
        alpha=0.6,
        color=UNKNOWN_COLOR,
        label=f"unknown ({(~known).sum()})",
        density=True,
    )
    if threshold is not None:
        t = threshold
        kept, acc = (s[known] >= t).mean(), (s[~known] >= t).mean() if (~known).any() else float("nan")
        ax.axvline(
            t,
            color="black",
            ls="--",
            lw=1.5,
            label=f"threshold {t:.3f}: keeps {kept:.1%} known, accepts {acc:.1%} unknown",
        )
    ax.set_xlabel(f"score: {name} (higher = more likely known)")
    ax.set_ylabel("density")
    ax.legend(fontsize=9)
    ax.set_title(f"{method} scores on the test set")
    return fig


def roc_curves_figure(
    scores: dict[str, np.ndarray],
    labels: np.ndarray,
    method: str,
    main: str | None = None,
    thresholds: dict[str, float] | None = None,
) -> Figure:
    """ROC curves of ``scores`` (AUROC in the legend), ``main`` drawn bold; each score's threshold in
    ``thresholds`` marked as a point (the main one annotated)."""
    known = np.asarray(labels) >= 0
    if known.all() or not known.any():
        raise DifairError("a ROC curve needs known and unknown test samples")
    thresholds = thresholds or {}
    fig = _figure(6.2, 5.8)
    ax = fig.add_subplot(label="roc")
    ax.plot([0, 1], [0, 1], color="0.7", ls=":", lw=1)
    for name, values in scores.items():
        s = np.asarray(values, dtype=np.float64)
        fpr, tpr = roc_points(s, known)
        is_main = name == main
        (line,) = ax.plot(
            fpr, tpr, lw=2.2 if is_main else 1.2, label=f"{name}: AUROC {auroc(s, np.asarray(labels)):.3f}"
        )
        if name not in thresholds:
            continue
        t = thresholds[name]
        fx, ty = (s[~known] >= t).mean(), (s[known] >= t).mean()
        ax.plot(
            [fx],
            [ty],
            "o",
            color=line.get_color(),
            ms=8 if is_main else 5,
            mec="black",
            gid=f"threshold:{name}",
        )
        if is_main:
            ax.annotate(
                f"threshold {t:.3f}\n({ty:.1%} known, {fx:.1%} unknown)",
                (fx, ty),
                xytext=(12, -30),
                textcoords="offset points",
                fontsize=8,
                arrowprops={"arrowstyle": "-", "color": "0.3"},
            )
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_xlabel("unknown test images accepted (FPR)")
    ax.set_ylabel("known test images accepted (TPR)")
    ax.set_aspect("equal")
    ax.legend(loc="lower right", fontsize=9)
    ax.set_title(f"ROC, known vs unknown ({method})")
    return fig
