"""``plot(run_dir, kind, ...)``: any analysis by name, as the ``difair plot`` command draws it.

Each kind is one small function registered with ``@register_plot(kind)``; ``PlotOptions`` holds every option a
kind may read. The names are ``difair.viz.kinds.PLOT_KINDS`` (the parser's list, kept light for start-up).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from difair.engine.load import LoadedRun, load_run
from difair.errors import DifairError
from difair.predict import Predictor, prepare_images
from difair.viz import activations, cards, curves, embeddings, representations
from difair.viz.analysis import RunAnalysis, analyze, require_class_features
from difair.viz.explain import card_for_image, display_image
from difair.viz.kinds import PLOT_KINDS, TOP_K, TSNE_POINTS


@dataclass
class PlotOptions:
    """The options of ``plot``; each kind reads the ones it needs."""

    index: int | None = None
    image: Any = None
    label: str | None = None
    classes: list[str] | None = None
    split: str | None = None
    correct_only: bool = True
    top_k: int = TOP_K
    hinton: bool = False
    max_points: int = TSNE_POINTS
    label_unknowns: bool = False
    threshold: float | None = None
    score: str | None = None
    device: str | None = None
    data: Any = None


@dataclass(frozen=True)
class PlotKind:
    """A plot kind: its drawing function and what it needs (the analysis, a class-feature run, one image)."""

    draw: Callable[..., Figure]
    analysis: bool = True  # False: draw(run, options) from the weights alone
    one_image: bool = False  # needs exactly one of --index or --image, and class-owned features
    reads: tuple[str, ...] = ()  # the PlotOptions of KIND_OPTIONS it reads; the others given are refused


PLOTS: dict[str, PlotKind] = {}

# PlotOptions that only some kinds read, and the command-line flag of each
KIND_OPTIONS = {
    "index": "--index", "image": "--image", "label": "--label", "classes": "--class", "split": "--split",
    "correct_only": "--all-samples", "top_k": "--top-k", "hinton": "--hinton", "max_points": "--max-points",
    "label_unknowns": "--label-unknowns", "score": "--score", "threshold": "--threshold",
}  # fmt: skip
DECIDES = ("score", "threshold")  # what the kinds that draw a decision at a threshold read


def register_plot(
    kind: str, *, analysis: bool = True, one_image: bool = False, reads: tuple[str, ...] = ()
) -> Callable:
    """Decorator: register ``draw(ra_or_run, options) -> Figure`` as plot ``kind``, reading the options ``reads``."""
    assert set(reads) <= set(KIND_OPTIONS), f"{kind}: unknown options {set(reads) - set(KIND_OPTIONS)}"

    def wrap(fn: Callable[..., Figure]) -> Callable[..., Figure]:
        PLOTS[kind] = PlotKind(fn, analysis, one_image, tuple(reads))
        return fn

    return wrap


def check_options(kind: str, o: PlotOptions) -> None:
    """Refuse an option given to a kind that does not read it (it would be ignored without a word)."""
    defaults = PlotOptions()
    ignored = [
        flag
        for name, flag in KIND_OPTIONS.items()
        if name not in PLOTS[kind].reads and getattr(o, name) != getattr(defaults, name)
    ]
    if ignored:
        reads = ", ".join(KIND_OPTIONS[r] for r in PLOTS[kind].reads)
        takes = (
            f"of the per-kind options it reads {reads}" if reads else "it reads none of the per-kind options"
        )
        raise DifairError(f"plot {kind} takes no {ignored[0]}: {takes}")


@register_plot("filter-correlation", analysis=False)
def _filter_correlation(run: LoadedRun, o: PlotOptions) -> Figure:
    return representations.filter_correlation_figure(run)


@register_plot("card", one_image=True, reads=("index", "image", "label", "top_k", "hinton", *DECIDES))
def _card(ra: RunAnalysis, o: PlotOptions) -> Figure:
    if o.label is not None and o.image is None:
        raise DifairError("--label goes with --image: a test image's class is known (--index)")
    if o.image is not None:
        pr = Predictor(ra.run, threshold=ra.threshold, score=ra.score_name, device=o.device, data=ra.data)
        return cards.image_card(card_for_image(pr, o.image, ra, o.label)[0], top_k=o.top_k, hinton=o.hinton)
    return cards.sample_card(ra, o.index, top_k=o.top_k, hinton=o.hinton)


@register_plot("activation-maps", one_image=True, reads=("index", "image", "classes"))
def _activation_maps(ra: RunAnalysis, o: PlotOptions) -> Figure:
    run = ra.run
    idx = [activations.resolve_class(run, c) for c in o.classes] if o.classes else None
    if o.image is not None:
        x, _, skipped = prepare_images(
            [o.image], ra.data.image_size, ra.data.channels, run.config.data.crop_pct
        )
        if skipped:
            raise DifairError(f"{skipped[0][0]}: {skipped[0][1]}")
        return activations.activation_maps_figure(
            run,
            x[0],
            idx,
            display=display_image(o.image, ra.data.channels, ra.data.image_size, run.config.data.crop_pct),
        )
    if not 0 <= o.index < len(ra.data.test_labels):
        raise DifairError(f"test index {o.index} is out of range: choose 0 to {len(ra.data.test_labels) - 1}")
    return activations.activation_maps_figure(run, ra.data.test_images[o.index], idx)


@register_plot("mean-representations", reads=("split", "correct_only"))
def _mean_representations(ra: RunAnalysis, o: PlotOptions) -> Figure:
    return representations.mean_representations_figure(ra, o.split or "train", o.correct_only)


@register_plot("similarity", reads=("split",))
def _similarity(ra: RunAnalysis, o: PlotOptions) -> Figure:
    return representations.class_similarity_figure(ra, o.split or "test")


@register_plot("tsne", reads=("max_points", "label_unknowns"))
def _tsne(ra: RunAnalysis, o: PlotOptions) -> Figure:
    return embeddings.tsne_figure(ra, max_points=o.max_points, label_unknowns=o.label_unknowns)


@register_plot("confusion", reads=DECIDES)
def _confusion(ra: RunAnalysis, o: PlotOptions) -> Figure:
    return embeddings.confusion_figure(ra)


@register_plot("scores", reads=DECIDES)
def _scores(ra: RunAnalysis, o: PlotOptions) -> Figure:
    return curves.score_distribution_figure(ra)


@register_plot("roc", reads=DECIDES)
def _roc(ra: RunAnalysis, o: PlotOptions) -> Figure:
    return curves.roc_figure(ra)


assert set(PLOTS) == set(PLOT_KINDS), "register every kind of difair.viz.kinds.PLOT_KINDS here"


def plot(run: str | Path | LoadedRun, kind: str, **options: Any) -> Figure:
    """The figure ``kind`` (see ``difair.viz.kinds.PLOT_KINDS``) of ``run``; options as ``PlotOptions``."""
    o = PlotOptions(**options)
    run = run if isinstance(run, LoadedRun) else load_run(run)
    if kind not in PLOTS:
        raise DifairError(f"unknown plot kind {kind!r}")
    spec = PLOTS[kind]
    check_options(kind, o)
    if not spec.analysis:  # needs the weights only
        return spec.draw(run, o)
    if spec.one_image:
        require_class_features(run.method, f"plot {kind}")
        if (o.index is None) == (o.image is None):
            raise DifairError(f"plot {kind} needs exactly one of --index (a test image) or --image (a file)")
    ra = analyze(run, data=o.data, score=o.score, threshold=o.threshold, device=o.device)
    return spec.draw(ra, o)


def make_plot(args: argparse.Namespace) -> Figure:
    """``plot`` from the parsed ``difair plot`` arguments."""
    return plot(
        args.run_dir, args.kind, index=args.index, image=args.image, label=args.label, classes=args.classes,
        split=args.split, correct_only=not args.all_samples, top_k=args.top_k, hinton=args.hinton,
        max_points=args.max_points, label_unknowns=args.label_unknowns, threshold=args.threshold,
        score=args.score, device=args.device,
    )  # fmt: skip
