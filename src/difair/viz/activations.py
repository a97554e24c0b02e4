"""Activation maps: the N maps of a class from the DIFAIR conv, before pooling, upsampled onto the image.

This is the paper's figure 1: with the correlation penalty the maps of one class differ in intensity while they
stay at the same places. Each map's spatial mean is the class's feature in z (global average pooling).
"""

from __future__ import annotations

import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from torch import Tensor

from difair.engine.load import LoadedRun
from difair.errors import DifairError
from difair.viz.analysis import require_class_features
from difair.viz.style import image_for_display, new_figure, short


@torch.no_grad()
def class_feature_maps(run: LoadedRun, image: Tensor, class_index: int) -> Tensor:
    """The N maps ``[N, h, w]`` (after ReLU, before pooling) of class ``class_index`` for one model input."""
    require_class_features(run.method, "activation maps")
    head = run.model.head
    n = head.features_per_class
    if not 0 <= class_index < head.num_classes:
        raise DifairError(f"class index {class_index} is out of range: choose 0 to {head.num_classes - 1}")
    dev = next(run.model.parameters()).device
    run.model.eval()
    feats = run.model.feature_map(image[None].to(dev))
    return head.feature_maps(feats)[0, class_index * n : (class_index + 1) * n].float().cpu()


def upsample_maps(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear upsampling of ``[N, h, w]`` maps to ``size`` (H, W)."""
    return torch.nn.functional.interpolate(maps[None], size=size, mode="bilinear", align_corners=False)[0]


def activation_maps(
    run: LoadedRun, image: Tensor, class_index: int, size: tuple[int, int] | None = None
) -> Tensor:
    """The class's N maps upsampled to ``size`` (default: the image's own H x W), ``[N, H, W]``."""
    size = size or (int(image.shape[-2]), int(image.shape[-1]))
    return upsample_maps(class_feature_maps(run, image, class_index), size)


def resolve_class(run: LoadedRun, name_or_index: str | int) -> int:
    """A class index from a class name, or from an index (an int, or a string when no class name is a number)."""
    names = run.class_names
    choices = f"choose one of {', '.join(names)}"
    if isinstance(name_or_index, str):
        if name_or_index in names:
            return names.index(name_or_index)
        numeric_names = any(n.strip().lstrip("-").isdigit() for n in names)
        if numeric_names or not name_or_index.strip().lstrip("-").isdigit():
            # where class names are numbers ("2", "4", ...), "0" must not silently mean "the first class"
            raise DifairError(f"unknown class {name_or_index!r}: {choices}")
    idx = int(name_or_index)
    if not 0 <= idx < len(names):
        raise DifairError(f"class index {idx} is out of range: {choices} (or an index 0 to {len(names) - 1})")
    return idx


def activation_maps_figure(
    run: LoadedRun,
    image: Tensor,
    classes: list[int] | None = None,
    display: Tensor | None = None,
    overlay: bool = True,
) -> Figure:
    """One row per class: the image, then the N maps of the class (shared colour scale, z value in the title).

    ``image`` is the model input ``[C, S, S]``; ``display`` (default ``image``) is drawn under the maps, which are
    upsampled to its size; ``overlay`` draws the image's outline over each map. ``classes`` defaults to the
    nearest class. Axes are labelled ``map:<class>:<j>``.
    """
    require_class_features(run.method, "activation maps")
    head = run.model.head
    n = head.features_per_class
    names = run.class_names or [str(c) for c in range(head.num_classes)]
    display = image if display is None else display
    size = (int(display.shape[-2]), int(display.shape[-1]))
    if classes is None:
        dev = next(run.model.parameters()).device
        with torch.no_grad():
            z = run.model(image[None].to(dev)).float().cpu()
        classes = [int(run.method.predict(z, head).cpu()[0])]
    raw = [class_feature_maps(run, image, c) for c in classes]
    maps = [upsample_maps(r, size) for r in raw]
    vmax = max(float(m.max()) for m in maps) or 1.0
    arr, cmap = image_for_display(display)
    gray = arr if arr.ndim == 2 else arr.mean(axis=2)
    fig = new_figure(1.9 * (n + 1) + 0.8, 2.1 * len(classes) + 0.5)
    gs = fig.add_gridspec(len(classes), n + 2, width_ratios=[1] * (n + 1) + [0.06])
    im = None
    for r, (c, m, raw_c) in enumerate(zip(classes, maps, raw, strict=True)):
        ax = fig.add_subplot(gs[r, 0], label=f"image:{names[c]}")
        ax.imshow(arr, cmap=cmap, vmin=0, vmax=1)
        ax.set_title("input", fontsize=9)
        ax.set_ylabel(f"class {short(names[c])}", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        for j in range(n):
            ax = fig.add_subplot(gs[r, j + 1], label=f"map:{names[c]}:{j}")
            im = ax.imshow(m[j].numpy(), cmap="inferno", vmin=0, vmax=vmax)
            if overlay and gray.max() > gray.min():  # the image's outline over the (opaque, faithful) map
                ax.contour(gray, levels=[0.5 * (gray.min() + gray.max())], colors="#7fdbff", linewidths=0.7)
            ax.set_title(
                f"#{c * n + j} ({short(names[c], 14)})\nz = {float(raw_c[j].mean()):.2f}", fontsize=9
            )
            ax.tick_params(labelsize=7)
            ax.xaxis.set_major_locator(MaxNLocator(4, integer=True))
            ax.yaxis.set_major_locator(MaxNLocator(4, integer=True))
    fig.colorbar(im, cax=fig.add_subplot(gs[:, n + 1]), label="activation")
    h, w = raw[0].shape[-2:]
    fig.suptitle(
        f"Activation maps of the DIFAIR conv before pooling ({h}x{w}, upsampled to {size[0]}x{size[1]}); "
        "z = the map's mean"
    )
    return fig
