"""Evaluation batches sized by pixels, so that full-resolution images do not allocate gigabytes per layer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

# An evaluation batch holds at most this many pixels (per channel): eval_batch_size images up to 64x64 px, fewer
# above (41 at 224 px, 10 at 448 px), so that evaluating at full resolution does not allocate gigabytes per layer.
EVAL_BATCH_PIXELS = 512 * 64 * 64


def eval_batch(batch_size: int, images: Any) -> int:
    """The evaluation batch for ``images`` (``[N, C, H, W]``): ``batch_size``, or fewer so that one batch holds at
    most ``EVAL_BATCH_PIXELS`` pixels."""
    h, w = images.shape[-2:]
    return max(1, min(batch_size, EVAL_BATCH_PIXELS // max(1, h * w)))


def eval_chunks(images: Any, batch_size: int) -> Iterator[Any]:
    """``images`` in consecutive evaluation batches of ``eval_batch(batch_size, images)``."""
    step = eval_batch(batch_size, images)
    return (images[i : i + step] for i in range(0, len(images), step))
