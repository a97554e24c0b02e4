"""Explain one image: its card (decision and representation beside the class means) and its activation maps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from difair.data.base import OSRData
from difair.data.cache import to_8bit
from difair.data.framing import crop_window
from difair.engine.load import load_run
from difair.engine.rundir import write_json
from difair.errors import DatasetNotFound, DifairError
from difair.predict import Predictor
from difair.viz.activations import activation_maps_figure, resolve_class
from difair.viz.analysis import RunAnalysis, analyze, require_class_features
from difair.viz.cards import CardInput, image_card
from difair.viz.kinds import TOP_K
from difair.viz.style import save_figure

DISPLAY_MAX = 256  # largest side of an image drawn on a card or under activation maps


def display_image(
    path_or_image: Any, channels: int, size: int | None = None, crop_pct: float | None = None
) -> Tensor | None:
    """The part of the image the model sees (a run with ``data.crop_pct`` < 1 keeps the centre of an image
    resized to ``size / crop_pct``) at (up to ``DISPLAY_MAX``) its own resolution for drawing, or None if it is not
    a file/PIL image."""
    from PIL import Image

    mode = "L" if channels == 1 else "RGB"
    if isinstance(path_or_image, (str, Path)):
        with Image.open(path_or_image) as im:
            im = to_8bit(im, mode)
    elif isinstance(path_or_image, Image.Image):
        im = to_8bit(path_or_image, mode)
    else:
        return None
    if size is not None:
        left, top, right, bottom = crop_window(size, crop_pct)
        w, h = im.size
        im = im.crop((round(left * w), round(top * h), round(right * w), round(bottom * h)))
    im.thumbnail((DISPLAY_MAX, DISPLAY_MAX))
    t = torch.from_numpy(np.asarray(im, dtype=np.uint8).copy())
    return t[None] if t.dim() == 2 else t.permute(2, 0, 1)


def _display(predictor: Predictor, image: Any) -> Tensor | None:
    """``display_image`` of ``image`` framed as ``predictor``'s run frames its input."""
    return display_image(image, predictor.channels, predictor.image_size, predictor.run.config.data.crop_pct)


def card_for_image(
    predictor: Predictor,
    image: Any,
    ra: RunAnalysis | None = None,
    label: str | None = None,
) -> tuple[CardInput, Tensor]:
    """Card data for one new image (and the prepared model input). ``ra`` supplies the class means when given."""
    require_class_features(predictor.method, "an image card")
    batch, _, skipped = predictor.prepare([image])
    if skipped:
        raise DifairError(f"{skipped[0][0]}: {skipped[0][1]}")
    p = predictor.predict_prepared(batch)
    pred = int(p.nearest[0])
    pred_mean = true_mean = None
    pred_n = true_n = 0
    true_known = None
    if ra is not None:
        means, counts = ra.class_means("train", correct_only=True)
        pred_mean, pred_n = (means[pred] if counts[pred] else None), int(counts[pred])
        if label is not None:
            true_mean, true_n, true_known = _label_mean(ra, label)
    elif label is not None:
        true_known = label in predictor.class_names
    shown = _display(predictor, image)
    card = CardInput(
        image=shown if shown is not None else batch[0],
        z=p.outputs[0],
        class_names=predictor.class_names,
        features_per_class=predictor.method.outputs_per_class,
        predicted=pred,
        score=float(p.scores[0]),
        score_name=p.score_name,
        threshold=p.threshold,
        true_name=label,
        true_known=true_known,
        pred_mean=pred_mean,
        pred_mean_n=pred_n,
        true_mean=true_mean,
        true_mean_n=true_n,
        min_distance=float(p.per_class[0].min()),
    )
    return card, batch[0]


def _label_mean(ra: RunAnalysis, label: str) -> tuple[Tensor | None, int, bool | None]:
    """Mean z over the test images of class ``label`` (known, or an unknown source class)."""
    if label in ra.class_names:
        c = ra.class_names.index(label)
        mask = ra.data.test_labels == c
        known: bool | None = True
    else:
        names, group = ra.unknown_groups()
        if names == ["unknown"]:  # the dataset does not name its unknown classes: any label may be one
            return None, 0, None
        if label not in names:
            shown = ", ".join([*ra.class_names, *names][:12])  # in full: a name to copy back
            raise DifairError(
                f"--label {label!r} is no class of the run's dataset ({shown}{' ...' if len(ra.class_names) + len(names) > 12 else ''}): "
                "check its spelling, or leave --label out"
            )
        mask = group == names.index(label)
        known = False
    n = int(mask.sum())
    return (ra.test_outputs[mask].mean(0) if n else None), n, known


def explain_image(
    run_dir: str | Path,
    image: Any,
    out_dir: str | Path,
    *,
    label: str | None = None,
    classes: list[str] | None = None,
    threshold: float | None = None,
    score: str | None = None,
    top_k: int = TOP_K,
    hinton: bool = False,
    data: OSRData | None = None,
    device: str | None = None,
    with_means: bool = True,
) -> dict[str, Any]:
    """Write ``card.png`` and ``activation_maps.png`` for one image into ``out_dir``; returns the prediction.

    The card's class means need the run's dataset; when it cannot be loaded the card is drawn without them
    (``"notes"`` in the result says so).
    """
    run = load_run(run_dir)
    require_class_features(run.method, "difair explain (cards and activation maps)")
    predictor = Predictor(run, threshold=threshold, score=score, device=device, data=data)
    notes: list[str] = []
    ra = None
    if with_means:
        try:
            ra = analyze(
                predictor.run,
                data=data,
                score=predictor.score_name,
                threshold=predictor.threshold,
                device=device,
            )
        except DifairError as e:  # a run's missing data: what to do for the run, not for training
            notes.append(
                f"class means left out: {e.for_run(run_dir) if isinstance(e, DatasetNotFound) else e}"
            )
    # the classes are resolved before any file is written
    chosen = [resolve_class(predictor.run, c) for c in classes] if classes else None
    card, x = card_for_image(predictor, image, ra, label)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    card_path = save_figure(image_card(card, top_k=top_k, hinton=hinton), out / "card.png")
    idx = chosen or [card.predicted]
    shown = _display(predictor, image)
    maps_path = save_figure(
        activation_maps_figure(predictor.run, x, idx, display=shown), out / "activation_maps.png"
    )
    result = {
        "image": str(image) if isinstance(image, (str, Path)) else "<array>",
        "prediction": predictor.class_names[card.predicted] if card.accepted else "unknown",
        "nearest_class": predictor.class_names[card.predicted],
        "accepted": bool(card.accepted),
        "score": card.score,
        "score_name": card.score_name,
        "threshold": card.threshold,
        "card": str(card_path),
        "activation_maps": str(maps_path),
        "notes": notes,
    }
    write_json(out / "prediction.json", result)
    return result
