"""Class-level views of the representation: mean representations, class similarity, filter correlations."""

from __future__ import annotations

import math

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import Tensor

from difair.engine.load import LoadedRun
from difair.nn.functional import filter_correlations
from difair.viz.analysis import RunAnalysis, require_class_features
from difair.viz.style import check_classes_drawable, feature_labels, heatmap, new_figure, short, short_all


def mean_representations_figure(
    ra: RunAnalysis, split: str = "train", correct_only: bool = True, annotate: bool | None = None
) -> Figure:
    """One (n_c x N) heatmap per class: the class's mean z, with one colour scale (the authors' grids).

    Axes are labelled ``mean:<class>``; ``annotate`` defaults to on for at most 10 classes.
    """
    require_class_features(ra.method, "the mean-representation grid")
    check_classes_drawable(ra.num_classes, "grid", "a mean-representation grid")
    means, counts = ra.class_means(split, correct_only)
    n_c, n = ra.num_classes, ra.features_per_class
    cols = min(3, n_c)
    rows = math.ceil(n_c / cols)
    annotate = n_c <= 10 if annotate is None else annotate
    w_panel, h_panel = 0.55 * n + 1.6, 0.32 * n_c + 0.9
    fig = new_figure(cols * w_panel + 0.8, rows * h_panel + 0.6)
    gs = fig.add_gridspec(rows, cols + 1, width_ratios=[1] * cols + [0.05])
    vmax = float(means.max()) if counts.any() else 1.0
    which = "correctly classified " if correct_only else ""
    im = None
    for c in range(n_c):
        ax = fig.add_subplot(gs[c // cols, c % cols], label=f"mean:{ra.class_names[c]}")
        ax.set_title(f"{short(ra.class_names[c])} (n={int(counts[c])})", fontsize=10)
        if not counts[c]:  # no mean to show: not a grid of measured zeros
            ax.set_axis_off()
            ax.text(
                0.5, 0.5, f"no {which}{split} images\nof this class", ha="center", va="center", fontsize=9
            )
            continue
        im = heatmap(
            ax,
            means[c].reshape(n_c, n),
            row_labels=ra.class_names,
            col_labels=feature_labels(n),
            vmax=vmax,
            annotate=annotate,
            fontsize=7,
        )
    if im is not None:
        fig.colorbar(im, cax=fig.add_subplot(gs[:, cols]), label="mean activation")
    fig.suptitle(f"Mean representation per class over {which}{split} images")
    return fig


def cosine_similarity_matrix(means: Tensor) -> Tensor:
    """Cosine similarity ``[n_c, n_c]`` between rows of ``means`` (0 for an all-zero row)."""
    unit = torch.nn.functional.normalize(means.float(), dim=1)
    return unit @ unit.T


def class_similarity_figure(ra: RunAnalysis, split: str = "test", correct_only: bool = False) -> Figure:
    """Cosine similarity of the class-mean outputs (z for DIFAIR, logits otherwise), annotated."""
    check_classes_drawable(ra.num_classes, "matrix", "a class-similarity matrix")
    means, _ = ra.class_means(split, correct_only)
    sim = cosine_similarity_matrix(means)
    n_c = ra.num_classes
    size = 1.2 + 0.55 * n_c
    fig = new_figure(size + 1.2, size)
    ax = fig.add_subplot(label="similarity")
    im = heatmap(
        ax,
        sim,
        row_labels=ra.class_names,
        col_labels=ra.class_names,
        vmin=min(0.0, float(sim.min())),
        vmax=1.0,
        annotate=n_c <= 20,
        fontsize=max(5.0, min(9.0, 80.0 / n_c)),
    )
    if max(len(c) for c in ra.class_names) > 3:
        ax.tick_params(axis="x", labelrotation=45)
    fig.colorbar(im, ax=ax, label="cosine similarity")
    what = "z" if ra.class_owned_features else "logits"
    ax.set_title(f"Class similarity: cosine of mean {what} ({split})")
    return fig


def filter_correlation_matrix(weight: Tensor) -> Tensor:
    """Pearson correlation ``[F, F]`` between all flattened filters of a conv weight ``[F, C, k, k]``.

    Same statistics as the correlation penalty (``difair.nn.functional``): its within-class blocks are what
    the penalty drives to 0.
    """
    return filter_correlations(weight.detach(), weight.shape[0])[0]


def within_class_correlations(corr: Tensor, features_per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """Off-diagonal correlations of filter pairs of the same class, and of pairs of different classes."""
    f = corr.shape[0]
    cls = torch.arange(f) // features_per_class
    same = (cls[:, None] == cls[None, :]) & torch.triu(torch.ones(f, f, dtype=torch.bool), 1)
    cross = (cls[:, None] != cls[None, :]) & torch.triu(torch.ones(f, f, dtype=torch.bool), 1)
    return corr[same].numpy(), corr[cross].numpy()


def filter_correlation_figure(run: LoadedRun | RunAnalysis) -> Figure:
    """The added conv's filter-correlation matrix (class blocks outlined) and a histogram of |corr|.

    Within-class pairs are what the penalty acts on; cross-class pairs are left free (the comparison).
    """
    run = run.run if isinstance(run, RunAnalysis) else run
    require_class_features(run.method, "the filter-correlation matrix")
    head = run.model.head
    n, n_c = head.features_per_class, head.num_classes
    check_classes_drawable(n_c, "matrix", "a filter-correlation matrix")
    names = run.class_names or [str(c) for c in range(n_c)]
    corr = filter_correlation_matrix(head.weight.float().cpu()).double()
    fig = new_figure(13, 5.8)
    gs = fig.add_gridspec(1, 2, width_ratios=[1.25, 1])
    ax = fig.add_subplot(gs[0], label="correlation")
    im = ax.imshow(corr.numpy(), cmap="coolwarm", vmin=-1, vmax=1, interpolation="nearest")
    for c in range(n_c):
        ax.add_patch(Rectangle((c * n - 0.5, c * n - 0.5), n, n, fill=False, edgecolor="black", lw=1.2))
    centres = [c * n + (n - 1) / 2 for c in range(n_c)]
    labels = short_all(names)
    ax.set_xticks(centres, labels=labels, rotation=45 if n_c > 6 else 0)
    ax.set_yticks(centres, labels=labels)
    ax.tick_params(length=0)
    fig.colorbar(im, ax=ax, label="Pearson correlation of filters", shrink=0.85)
    ax.set_title(f"Filter correlations of the DIFAIR conv ({n_c} classes x {n} filters)")
    same, cross = within_class_correlations(corr, n)
    axh = fig.add_subplot(gs[1], label="histogram")
    bins = np.linspace(0, 1, 41)
    if cross.size:
        axh.hist(np.abs(cross), bins=bins, density=True, alpha=0.55, color="0.55", label="different classes")
    if same.size:
        axh.hist(
            np.abs(same), bins=bins, density=True, alpha=0.75, color="#d7301f", label="same class (penalised)"
        )
    mean_same = float(np.abs(same).mean()) if same.size else 0.0
    axh.axvline(
        mean_same, color="#7f0000", ls="--", lw=1.2, label=f"mean |corr| same class = {mean_same:.3f}"
    )
    axh.set_xlabel("|correlation| of a pair of filters")
    axh.set_ylabel("density")
    axh.set_xlim(0, 1)
    axh.legend(fontsize=9)
    axh.set_title("What the correlation penalty acts on")
    return fig
