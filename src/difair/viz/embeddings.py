"""Where test samples land: t-SNE of the outputs with the anchors, and confusion matrices at the threshold."""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure

from difair.viz.analysis import RunAnalysis
from difair.viz.kinds import TSNE_POINTS
from difair.viz.style import check_classes_drawable, heatmap, new_figure, short, short_all

REJECTED = "unknown (rejected)"


def _subsample(n: int, max_points: int, seed: int) -> np.ndarray:
    if n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, max_points, replace=False))


def tsne_embedding(
    ra: RunAnalysis,
    max_points: int = TSNE_POINTS,
    perplexity: float = 30.0,
    seed: int = 0,
    anchors: bool = True,
    threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """2-D t-SNE of the test outputs (PCA init), anchors embedded jointly; returns (points, indices, anchors).

    ``threads`` caps scikit-learn's OpenMP threads during the fit (1 is much faster on a busy machine).
    """
    from contextlib import nullcontext

    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    idx = _subsample(len(ra.data.test_labels), max_points, seed)
    x = ra.test_outputs[idx].numpy().astype(np.float64)
    a = ra.anchors() if anchors else None
    if a is not None:
        x = np.concatenate([x, a.numpy().astype(np.float64)])
    perp = float(min(perplexity, max(2.0, (len(x) - 1) / 3.0)))
    with threadpool_limits(threads, user_api="openmp") if threads else nullcontext():
        emb = TSNE(2, perplexity=perp, init="pca", random_state=seed, max_iter=1000).fit_transform(x)
    n = len(idx)
    return emb[:n], idx, (emb[n:] if a is not None else None)


def tsne_figure(
    ra: RunAnalysis,
    max_points: int = TSNE_POINTS,
    perplexity: float = 30.0,
    seed: int = 0,
    anchors: bool = True,
    label_unknowns: bool = False,
    threads: int | None = None,
) -> Figure:
    """t-SNE of z (DIFAIR) or logits: knowns coloured by class ('o'), unknowns 'x', anchors black stars.

    ``label_unknowns`` colours unknowns by their source class instead of one grey 'unknown'.
    """
    import matplotlib as mpl

    pts, idx, anc = tsne_embedding(ra, max_points, perplexity, seed, anchors, threads)
    labels = ra.data.test_labels[idx].numpy()
    fig = new_figure(9, 7.5)
    ax = fig.add_subplot(label="tsne")
    cmap = mpl.colormaps["tab20" if ra.num_classes > 10 else "tab10"]
    for c, name in enumerate(ra.class_names):
        m = labels == c
        ax.scatter(
            *pts[m].T,
            s=12,
            marker="o",
            color=cmap(c % cmap.N),
            label=short(name),
            alpha=0.8,
            gid=f"known:{name}",
        )
    unknown = labels < 0
    if unknown.any():
        if label_unknowns:
            names, group = ra.unknown_groups()
            g = group[torch.as_tensor(idx)].numpy()
            ucmap = mpl.colormaps["Dark2"]
            for j, name in enumerate(names):
                m = g == j
                if m.any():
                    ax.scatter(
                        *pts[m].T,
                        s=16,
                        marker="x",
                        color=ucmap(j % 8),
                        label=f"unknown {short(name)}",
                        gid=f"unknown:{name}",
                    )
        else:
            ax.scatter(
                *pts[unknown].T, s=16, marker="x", color="0.45", label="unknown", alpha=0.7, gid="unknown"
            )
    if anc is not None:
        ax.scatter(
            *anc.T,
            s=220,
            marker="*",
            color="black",
            edgecolor="white",
            lw=0.8,
            label="anchors",
            gid="anchors",
            zorder=5,
        )
        for name, (x, y) in zip(short_all(ra.class_names), anc, strict=True):
            ax.annotate(name, (x, y), xytext=(6, 6), textcoords="offset points", fontsize=10, weight="bold")
    ax.legend(fontsize=8, markerscale=1.3, loc="best", ncol=2 if ra.num_classes > 10 else 1)
    what = "z" if ra.class_owned_features else "logits"
    ax.set_title(
        f"t-SNE of {what}: {int((labels >= 0).sum())} known, {int(unknown.sum())} unknown test samples"
    )
    ax.set_xticks([])
    ax.set_yticks([])
    return fig


def confusion_matrices(ra: RunAnalysis, threshold: float | None = None) -> dict[str, object]:
    """Known confusion (rows true class, columns predicted class + rejected) and unknown-to-known confusion.

    ``threshold`` None uses the analysis's threshold; the last column counts samples rejected as unknown.
    """
    t = ra.threshold if threshold is None else threshold
    labels, preds = ra.data.test_labels, ra.test_preds
    accepted = ra.test_scores >= t
    n_c = ra.num_classes
    col = torch.where(accepted, preds, torch.full_like(preds, n_c))  # n_c = rejected
    known = labels >= 0
    km = np.zeros((n_c, n_c + 1), dtype=np.int64)
    np.add.at(km, (labels[known].numpy(), col[known].numpy()), 1)
    names, group = ra.unknown_groups()
    um = np.zeros((len(names), n_c + 1), dtype=np.int64)
    unk = group >= 0
    np.add.at(um, (group[unk].numpy(), col[unk].numpy()), 1)
    return {
        "known": km,
        "unknown": um,
        "classes": ra.class_names,
        "columns": [*ra.class_names, REJECTED],
        "unknown_classes": names,
        "threshold": t,
    }


def _count_heatmap(ax, mat: np.ndarray, rows: list[str], cols: list[str]):
    im = heatmap(
        ax,
        mat,
        row_labels=rows,
        col_labels=cols,
        vmin=0,
        vmax=max(1, int(mat.max())),
        fmt=".0f",
        cmap="Blues",
    )
    ax.set_xticks(range(len(cols)), labels=short_all(cols), rotation=40, ha="right", rotation_mode="anchor")
    return im


def confusion_figure(ra: RunAnalysis, threshold: float | None = None) -> Figure:
    """Known test samples (true x predicted, with a rejected column) beside unknowns (source class x predicted)."""
    check_classes_drawable(ra.num_classes, "matrix", "a confusion matrix")
    cm = confusion_matrices(ra, threshold)
    n_c = ra.num_classes
    n_u = len(cm["unknown_classes"])
    fig = new_figure(2 * (1.6 + 0.55 * (n_c + 1)) + 1.5, 1.8 + 0.5 * max(n_c, n_u))
    gs = fig.add_gridspec(1, 2, width_ratios=[1, 1])
    ax = fig.add_subplot(gs[0], label="known_confusion")
    im = _count_heatmap(ax, cm["known"], cm["classes"], cm["columns"])
    acc = np.trace(cm["known"][:, :n_c]) / max(1, cm["known"].sum())
    ax.set_title(f"Known test images ({acc:.1%} accepted and right)")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true class")
    fig.colorbar(im, ax=ax, shrink=0.8)
    ax2 = fig.add_subplot(gs[1], label="unknown_confusion")
    im2 = _count_heatmap(ax2, cm["unknown"], cm["unknown_classes"], cm["columns"])
    rej = cm["unknown"][:, n_c].sum() / max(1, cm["unknown"].sum())
    ax2.set_title(f"Unknown test images ({rej:.1%} rejected)")
    ax2.set_xlabel("predicted")
    ax2.set_ylabel("true (unknown) class")
    fig.colorbar(im2, ax=ax2, shrink=0.8)
    fig.suptitle(f"Confusion at threshold {cm['threshold']:.3f} ({ra.score_name})")
    return fig
