"""Image cards: an image, its decision and its DIFAIR representation beside the class means (the paper's Fig. 2).

The representation z is drawn as an (n_c x N) heatmap restricted to the top-k classes by summed activation,
sorted descending, in the authors' style (cmap OrRd, values annotated, one colour scale shared by the three
heatmaps); ``hinton=True`` draws true Hinton squares (area = activation) instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from matplotlib.figure import Figure
from torch import Tensor

from difair.errors import DifairError
from difair.nn.functional import anchor_distances
from difair.viz.analysis import RunAnalysis, require_class_features
from difair.viz.kinds import TOP_K
from difair.viz.style import (
    feature_labels,
    heatmap,
    hinton,
    image_for_display,
    new_figure,
    short,
    top_classes,
)


@dataclass
class CardInput:
    """What one card shows. ``predicted`` is the nearest class; ``accepted`` says whether it is kept."""

    image: Tensor  # [C, H, W] uint8 or float in [0, 1]
    z: Tensor  # [n_c * N]
    class_names: list[str]
    features_per_class: int
    predicted: int
    score: float
    score_name: str
    threshold: float | None = None
    true_name: str | None = None  # None: not given
    true_known: bool | None = None
    pred_mean: Tensor | None = None  # mean z of the predicted class (correct training images)
    pred_mean_n: int = 0
    true_mean: Tensor | None = None  # mean z of the true class over its test images
    true_mean_n: int = 0
    min_distance: float | None = None

    @property
    def accepted(self) -> bool | None:
        return None if self.threshold is None else self.score >= self.threshold


def _draw_rep(ax, z: Tensor, card: CardInput, k: int, vmax: float, use_hinton: bool, title: str):
    n = card.features_per_class
    rows = top_classes(z, n, k)
    mat = z.detach().cpu().float().reshape(-1, n)[rows]
    labels = [card.class_names[r] for r in rows]
    if use_hinton:
        im = hinton(ax, mat, row_labels=labels, col_labels=feature_labels(n), vmax=vmax)
    else:
        im = heatmap(ax, mat, row_labels=labels, col_labels=feature_labels(n), vmax=vmax)
    ax.set_title(title, fontsize=10)
    return im


def _decision_text(card: CardInput) -> str:
    pred = short(card.class_names[card.predicted])
    lines = [f"Nearest class: {pred}", f"OSR score ({card.score_name}): {card.score:.3f}"]
    if card.min_distance is not None:
        lines.append(f"Distance to nearest anchor: {card.min_distance:.2f}")
    if card.threshold is not None:
        verdict = f"ACCEPTED as {pred}" if card.accepted else "REJECTED as unknown"
        lines += [f"Threshold: {card.threshold:.3f}", f"Decision: {verdict}"]
        right = _correct(card)
        if right is not None:
            lines.append("(correct)" if right else "(wrong)")
    return "\n".join(lines)


def _correct(card: CardInput) -> bool | None:
    """Whether the decision is right, when the truth and a threshold are known."""
    if card.true_known is None or card.threshold is None:
        return None
    if card.true_known:
        return bool(card.accepted) and card.true_name == card.class_names[card.predicted]
    return not card.accepted


def image_card(card: CardInput, top_k: int = TOP_K, hinton: bool = False) -> Figure:
    """The card figure; axes are labelled ``image``, ``z``, ``pred_mean``, ``true_mean`` for inspection."""
    k = min(top_k, len(card.class_names))
    reps = [card.z] + [m for m in (card.pred_mean, card.true_mean) if m is not None]
    vmax = max(float(r.max()) for r in reps)
    fig = new_figure(11, 7.6)
    gs = fig.add_gridspec(2, 3, width_ratios=[1, 1, 0.04], height_ratios=[1.15, 1])
    left = gs[0, 0].subgridspec(2, 1, height_ratios=[3, 1.5])
    ax_img = fig.add_subplot(left[0], label="image")
    arr, cmap = image_for_display(card.image)
    ax_img.imshow(arr, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
    ax_img.set_xticks([])
    ax_img.set_yticks([])
    if card.true_name is None:
        ax_img.set_title("True class: not given", fontsize=11)
    else:
        status = "" if card.true_known is None else (" (known)" if card.true_known else " (unknown)")
        ax_img.set_title(f"True class: {short(card.true_name)}{status}", fontsize=11)
    ax_txt = fig.add_subplot(left[1], label="text")
    ax_txt.axis("off")
    color = {True: "#1b7837", False: "#b2182b", None: "black"}[_correct(card)]
    ax_txt.text(
        0.0, 1.0, _decision_text(card), va="top", ha="left", fontsize=9.5, color=color, family="monospace"
    )

    ax_z = fig.add_subplot(gs[0, 1], label="z")
    im = _draw_rep(
        ax_z, card.z, card, k, vmax, hinton, f"Representation z (top {k} classes by summed activation)"
    )
    pred = short(card.class_names[card.predicted])
    panels = (
        (
            gs[1, 0],
            "pred_mean",
            card.pred_mean,
            f"Mean of predicted class '{pred}'\n({card.pred_mean_n} correct train images)",
        ),
        (
            gs[1, 1],
            "true_mean",
            card.true_mean,
            f"Mean of true class '{short(str(card.true_name))}'\n({card.true_mean_n} test images)",
        ),
    )
    for spec, label, mean, title in panels:
        ax = fig.add_subplot(spec, label=label)
        if mean is not None:
            _draw_rep(ax, mean, card, k, vmax, hinton, title)
        else:
            ax.axis("off")
    cbar = fig.colorbar(im, cax=fig.add_subplot(gs[:, 2], label="colorbar"))
    cbar.set_label("activation")
    return fig


def card_input(ra: RunAnalysis, index: int) -> CardInput:
    """The card data of test sample ``index`` of an analysed DIFAIR run."""
    require_class_features(ra.method, "an image card")
    z = ra.test_outputs[index]
    pred = int(ra.test_preds[index])
    pred_means, pred_counts = ra.class_means("train", correct_only=True)
    true_mean, true_n = ra.group_mean(index)
    anchors = ra.anchors()
    return CardInput(
        image=ra.data.test_images[index],
        z=z,
        class_names=ra.class_names,
        features_per_class=ra.features_per_class,
        predicted=pred,
        score=float(ra.test_scores[index]),
        score_name=ra.score_name,
        threshold=ra.threshold,
        true_name=ra.true_name(index),
        true_known=bool(ra.data.test_labels[index] >= 0),
        pred_mean=pred_means[pred] if pred_counts[pred] else None,
        pred_mean_n=int(pred_counts[pred]),
        true_mean=true_mean,
        true_mean_n=true_n,
        min_distance=float(anchor_distances(z[None], anchors).min()) if anchors is not None else None,
    )


def sample_card(ra: RunAnalysis, index: int, top_k: int = TOP_K, hinton: bool = False) -> Figure:
    """The card of test sample ``index`` (known samples first, then unknown, as in the dataset)."""
    if not 0 <= index < len(ra.data.test_labels):
        raise DifairError(f"test index {index} is out of range: choose 0 to {len(ra.data.test_labels) - 1}")
    return image_card(card_input(ra, index), top_k=top_k, hinton=hinton)
