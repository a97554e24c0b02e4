"""``plot(run_dir, kind, ...)``: any analysis by name, as the ``difair plot`` command draws it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from difair.engine.load import LoadedRun, load_run
from difair.errors import DifairError
from difair.predict import Predictor, load_images
from difair.viz import activations, cards, curves, embeddings, representations
from difair.viz.analysis import analyze, require_class_features
from difair.viz.explain import card_for_image, display_image


def plot(
    run: str | Path | LoadedRun,
    kind: str,
    *,
    index: int | None = None,
    image: Any = None,
    label: str | None = None,
    classes: list[str] | None = None,
    split: str | None = None,
    correct_only: bool = True,
    top_k: int = 6,
    hinton: bool = False,
    max_points: int = 1500,
    label_unknowns: bool = False,
    threshold: float | None = None,
    score: str | None = None,
    device: str | None = None,
    data=None,
) -> Figure:
    """The figure ``kind`` (see ``difair.viz.commands.PLOT_KINDS``) of ``run``."""
    run = run if isinstance(run, LoadedRun) else load_run(run)
    if kind == "filter-correlation":  # needs the weights only
        return representations.filter_correlation_figure(run)
    if kind in ("card", "activation-maps"):
        require_class_features(run.method, f"plot {kind}")
        if (index is None) == (image is None):
            raise DifairError(f"plot {kind} needs exactly one of --index (a test image) or --image (a file)")
    ra = analyze(run, data=data, score=score, threshold=threshold, device=device)
    if kind == "card":
        if image is not None:
            pr = Predictor(run, threshold=ra.threshold, score=ra.score_name, device=device, data=ra.data)
            return cards.image_card(card_for_image(pr, image, ra, label)[0], top_k=top_k, hinton=hinton)
        return cards.sample_card(ra, index, top_k=top_k, hinton=hinton)
    if kind == "activation-maps":
        idx = [activations.resolve_class(run, c) for c in classes] if classes else None
        if image is not None:
            x, _, skipped = load_images([image], ra.data.image_size, ra.data.channels)
            if skipped:
                raise DifairError(f"{skipped[0][0]}: {skipped[0][1]}")
            return activations.activation_maps_figure(
                run, x[0], idx, display=display_image(image, ra.data.channels)
            )
        if not 0 <= index < len(ra.data.test_labels):
            raise DifairError(
                f"test index {index} is out of range: choose 0 to {len(ra.data.test_labels) - 1}"
            )
        return activations.activation_maps_figure(run, ra.data.test_images[index], idx)
    if kind == "mean-representations":
        return representations.mean_representations_figure(ra, split or "train", correct_only)
    if kind == "similarity":
        return representations.class_similarity_figure(ra, split or "test")
    if kind == "tsne":
        return embeddings.tsne_figure(ra, max_points=max_points, label_unknowns=label_unknowns)
    if kind == "confusion":
        return embeddings.confusion_figure(ra)
    if kind == "scores":
        return curves.score_distribution_figure(ra)
    if kind == "roc":
        return curves.roc_figure(ra)
    raise DifairError(f"unknown plot kind {kind!r}")


def make_plot(args: argparse.Namespace) -> Figure:
    """``plot`` from the parsed ``difair plot`` arguments."""
    return plot(
        args.run_dir, args.kind, index=args.index, image=args.image, label=args.label, classes=args.classes,
        split=args.split, correct_only=not args.all_samples, top_k=args.top_k, hinton=args.hinton,
        max_points=args.max_points, label_unknowns=args.label_unknowns, threshold=args.threshold,
        score=args.score, device=args.device,
    )  # fmt: skip
