"""Shared drawing helpers: figures without pyplot (headless, thread-safe), annotated heatmaps, saving."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import numpy.typing
import torch
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.patches import Rectangle
from torch import Tensor

from difair.engine.rundir import atomic_write_bytes
from difair.errors import DifairError
from difair.viz.fonts import fonts_for_any_script

CMAP = "OrRd"  # the authors' colour map for representations
FORMATS = ("png", "pdf", "svg")


# Figures that grow with the number of classes stay readable (and within memory: a 1000-class grid asked matplotlib
# for a canvas of ~10^5 inches) up to these counts; beyond them the figure is refused with what to draw instead.
MAX_CLASSES = {"grid": 30, "matrix": 100}


def check_classes_drawable(n_classes: int, kind: str, what: str) -> None:
    """Refuse ``what`` (a figure with one row, column or panel per class, of ``kind`` grid or matrix) for more
    classes than ``MAX_CLASSES[kind]``."""
    limit = MAX_CLASSES[kind]
    if n_classes > limit:
        raise DifairError(
            f"{what} of {n_classes} classes is no readable figure (at most {limit}): look at single images "
            "(difair plot RUN card --index I, difair explain), the t-SNE, or the numbers in results.json"
        )


def new_figure(width: float, height: float) -> Figure:
    """A Figure not registered with pyplot (no global state), constrained layout."""
    return Figure(figsize=(width, height), layout="constrained")


def save_figure(fig: Figure, path: str | Path, dpi: int = 150) -> Path:
    """Save ``fig`` as PNG, PDF or SVG (from the suffix), atomically; text of any script in an installed font
    that has its glyphs (``difair.viz.fonts``)."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise DifairError(f"cannot save a figure as {path.name!r}: use a .png, .pdf or .svg file name")
    buf = io.BytesIO()
    with fonts_for_any_script(fig):
        fig.savefig(buf, format=fmt, dpi=dpi)
    atomic_write_bytes(path, buf.getvalue())
    return path


def png_bytes(fig: Figure, dpi: int = 100) -> bytes:
    buf = io.BytesIO()
    with fonts_for_any_script(fig):
        fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def to_numpy(x: Tensor | np.typing.ArrayLike) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)


def image_for_display(image: Tensor) -> tuple[np.ndarray, str | None]:
    """``[C, H, W]`` uint8 or float image -> an array for ``imshow`` and its colour map (gray for 1 channel)."""
    x = image.detach().cpu()
    x = x.float().div(255) if x.dtype == torch.uint8 else x.float()
    x = x.clamp(0, 1)
    if x.shape[0] == 1:
        return x[0].numpy(), "gray"
    return x.permute(1, 2, 0).numpy(), None


def top_classes(z: Tensor, features_per_class: int, k: int) -> list[int]:
    """Indices of the ``k`` classes with the largest summed activation, descending (ties: lower index first)."""
    sums = z.detach().cpu().float().reshape(-1, features_per_class).sum(1)
    order = torch.sort(sums, descending=True, stable=True).indices
    return [int(i) for i in order[: max(1, k)]]


def heatmap(
    ax: Axes,
    values: Tensor | np.typing.ArrayLike,
    *,
    row_labels: list[str] | None = None,
    col_labels: list[str] | None = None,
    vmin: float = 0.0,
    vmax: float | None = None,
    cmap: str = CMAP,
    annotate: bool = True,
    fmt: str = ".2f",
    fontsize: float | None = None,
) -> AxesImage:
    """An annotated ``imshow`` heatmap (the authors' style): returns the image for a colour bar."""
    v = to_numpy(values).astype(float)
    vmax = float(v.max()) if vmax is None else vmax
    vmax = vmax if vmax > vmin else vmin + 1.0
    im = ax.imshow(v, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto", interpolation="nearest")
    _ticks(ax, v.shape, row_labels, col_labels)
    if annotate:
        norm = Normalize(vmin, vmax)
        size = fontsize or max(5.0, min(9.0, 60.0 / max(v.shape[1], 1)))
        for (r, c), val in np.ndenumerate(v):
            color = "white" if norm(val) > 0.6 else "black"
            ax.text(c, r, format(val, fmt), ha="center", va="center", fontsize=size, color=color)
    return im


def hinton(
    ax: Axes,
    values: Tensor | np.typing.ArrayLike,
    *,
    row_labels: list[str] | None = None,
    col_labels: list[str] | None = None,
    vmax: float | None = None,
    cmap: str = CMAP,
) -> ScalarMappable:
    """A Hinton diagram: each square's area is proportional to the value (coloured by it too)."""
    v = np.clip(to_numpy(values).astype(float), 0, None)
    vmax = float(v.max()) if vmax is None else vmax
    vmax = vmax if vmax > 0 else 1.0
    norm = Normalize(0, vmax)
    mappable = ScalarMappable(norm=norm, cmap=cmap)
    cm = mappable.get_cmap()
    ax.set_facecolor("#f2f2f2")
    ax.set_aspect("equal")
    for (r, c), val in np.ndenumerate(v):
        side = 0.92 * np.sqrt(min(val, vmax) / vmax)
        if side > 0:
            ax.add_patch(
                Rectangle(
                    (c - side / 2, r - side / 2), side, side, facecolor=cm(norm(val)), edgecolor="0.3", lw=0.4
                )
            )
    _ticks(ax, v.shape, row_labels, col_labels)
    return mappable


LABEL_CHARS = 22  # a class name longer than this is shortened in figures: its start and end are kept


def short(name: str, limit: int = LABEL_CHARS) -> str:
    """``name`` as drawn in a figure: whole up to ``limit`` characters, else its start and end around an ellipsis
    (so a long folder name cannot squeeze the axes or run over its neighbours)."""
    if len(name) <= limit:
        return name
    head = (limit - 1) * 2 // 3
    return name[:head] + "\u2026" + name[len(name) - (limit - 1 - head) :]


def short_all(names: Iterable[str]) -> list[str]:
    """``short`` of each name, kept apart: names that shorten alike get their position appended (``... #3``)."""
    out = [short(str(n)) for n in names]
    seen = Counter(out)
    return [
        f"{short(str(n), LABEL_CHARS - 4)} #{i}" if seen[s] > 1 else s
        for i, (n, s) in enumerate(zip(names, out, strict=True))
    ]


def _ticks(ax: Axes, shape: tuple[int, ...], row_labels, col_labels) -> None:
    ax.set_xlim(-0.5, shape[1] - 0.5)
    ax.set_ylim(shape[0] - 0.5, -0.5)
    rows = row_labels if row_labels is not None else [str(i) for i in range(shape[0])]
    cols = col_labels if col_labels is not None else [str(i) for i in range(shape[1])]
    ax.set_yticks(range(shape[0]), labels=short_all(rows))
    ax.set_xticks(range(shape[1]), labels=short_all(cols))
    ax.tick_params(length=0)


def feature_labels(n: int) -> list[str]:
    """Column labels of an (n_c x N) representation: f1..fN."""
    return [f"f{i + 1}" for i in range(n)]
