"""Score distributions of known vs unknown test samples and ROC curves, with the chosen threshold marked."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from difair.errors import DifairError
from difair.eval.metrics import auroc
from difair.viz.analysis import RunAnalysis
from difair.viz.style import new_figure

KNOWN_COLOR, UNKNOWN_COLOR = "#2166ac", "#d6604d"


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
    known = ra.data.test_labels.numpy() >= 0
    fig = new_figure(8, 4.6)
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
    ax.set_title(f"{ra.method.name} scores on the test set")
    return fig


def roc_points(scores: np.ndarray, known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ROC of known-vs-unknown detection: (unknowns accepted, knowns accepted) over all thresholds."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(known.astype(int), scores, drop_intermediate=False)
    return fpr, tpr


def roc_figure(ra: RunAnalysis, scores: list[str] | None = None) -> Figure:
    """ROC curves of the method's scores (AUROC in the legend); each score's threshold marked as a point."""
    names = scores or list(ra.scores)
    known = ra.data.test_labels.numpy() >= 0
    if known.all() or not known.any():
        raise DifairError("a ROC curve needs known and unknown test samples")
    fig = new_figure(6.2, 5.8)
    ax = fig.add_subplot(label="roc")
    ax.plot([0, 1], [0, 1], color="0.7", ls=":", lw=1)
    for name in names:
        _, s, t = _score(ra, name)
        fpr, tpr = roc_points(s, known)
        main = name == ra.score_name
        (line,) = ax.plot(
            fpr, tpr, lw=2.2 if main else 1.2, label=f"{name}: AUROC {auroc(s, ra.data.test_labels):.3f}"
        )
        fx, ty = (s[~known] >= t).mean(), (s[known] >= t).mean()
        ax.plot(
            [fx], [ty], "o", color=line.get_color(), ms=8 if main else 5, mec="black", gid=f"threshold:{name}"
        )
        if main:
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
    ax.set_title(f"ROC, known vs unknown ({ra.method.name})")
    return fig
