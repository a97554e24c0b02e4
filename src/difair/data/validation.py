"""A validation set held out of the known training images (``data.val_fraction``).

The paper's runs train on the whole training set and have no validation set (reference-notes 9, item 15), so
the default fraction is 0. With a validation set, ``difair calibrate`` sets the rejection threshold on known
images the model never trained on instead of on the known test images, and ``results.json`` reports the
closed-set accuracy on it. Unknown classes never enter it: it is what a user has before deployment.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from difair.data.base import OSRData
from difair.data.stream import take
from difair.errors import DifairError


def stratified_holdout(
    labels: np.ndarray, fraction: float, seed: int, class_names: list[str] | None = None
) -> np.ndarray:
    """Sorted indices of ``round(fraction * n_c)`` samples of every class ``c`` (at least one, and at least
    one left), drawn with ``numpy.random.default_rng(seed)`` class by class in label order."""
    if not 0 < fraction < 1:
        raise DifairError(f"data.val_fraction must be in [0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    picked = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if len(idx) < 2:
            name = repr(class_names[int(c)]) if class_names and 0 <= int(c) < len(class_names) else int(c)
            raise DifairError(
                f"known class {name} has {len(idx)} training image(s): a validation set needs at least 2 per class; "
                "set data.val_fraction=0"
            )
        k = min(max(1, round(fraction * len(idx))), len(idx) - 1)
        picked.append(rng.permutation(idx)[:k])
    return np.sort(np.concatenate(picked))


def hold_out_validation(data: OSRData, fraction: float, seed: int = 0) -> OSRData:
    """``data`` with a stratified ``fraction`` of its training images moved into ``val_images``/``val_labels``.

    The normalisation statistics stay those of the whole training set (they are part of the split's
    definition, and the validation images are known-class training images)."""
    if fraction == 0:
        return data
    val = stratified_holdout(data.train_labels.numpy(), fraction, seed, data.class_names)
    keep = np.ones(len(data.train_labels), dtype=bool)
    keep[val] = False
    val_t, keep_t = torch.from_numpy(val), torch.from_numpy(np.flatnonzero(keep))
    meta = {**data.meta, "validation": {"fraction": fraction, "seed": seed, "n_val": len(val)}}
    return dataclasses.replace(
        data,
        train_images=take(data.train_images, keep_t),  # data.cache=stream: still undecoded
        train_labels=data.train_labels[keep_t],
        val_images=data.train_images[val_t],
        val_labels=data.train_labels[val_t],
        meta=meta,
    )
