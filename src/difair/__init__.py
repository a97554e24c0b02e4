"""difair: DIFAIR open-set recognition in PyTorch, with its baselines, metrics and benchmarks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from difair.errors import DifairError
from difair.version import __version__

if TYPE_CHECKING:
    from pathlib import Path

    from difair.predict import Predictor


def load(run_dir: str | Path, **kwargs: Any) -> Predictor:
    """A ``Predictor`` for a trained run: ``difair.load(run_dir).predict(images)`` (see ``difair.predict``)."""
    from difair.predict import Predictor  # start-up time: ``import difair`` does not import torch

    return Predictor(run_dir, **kwargs)


__all__ = ["DifairError", "__version__", "load"]
