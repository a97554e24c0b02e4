"""Whether two data arguments share samples: ``evaluate`` refuses detectors fitted on a test set."""

from __future__ import annotations

from typing import Any

from torch import Tensor
from torch.utils.data import DataLoader, Subset, TensorDataset

from difair.eval.posthoc.base import FeatureSet


def _rows(data: Any) -> tuple[Any, list[int] | None]:
    """What ``data`` reads its samples from, and which of them (None: all): a loader's dataset, Subsets resolved
    to their base and its indices; the first tensor of a TensorDataset, a tuple or a FeatureSet."""
    if isinstance(data, DataLoader):
        data = data.dataset
    indices: list[int] | None = None
    while isinstance(data, Subset):
        idx = [int(i) for i in data.indices]
        indices = idx if indices is None else [idx[i] for i in indices]
        data = data.dataset
    if isinstance(data, FeatureSet):
        data = data.logits
    elif isinstance(data, TensorDataset):
        data = data.tensors[0]
    elif isinstance(data, tuple) and data:
        data = data[0]
    return data, indices


def _row_offsets(t: Tensor, indices: list[int] | None) -> set[int]:
    """Where in its storage each (chosen) row of ``t`` starts: rows of one storage are the same samples."""
    if t.dim() == 0:
        return {t.storage_offset()}
    rows = range(t.shape[0]) if indices is None else indices
    return {t.storage_offset() + i * t.stride(0) for i in rows}


def shares_samples(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` (loaders, datasets, Subsets, tensors, ``(x, y)`` tuples or FeatureSets) hold a
    sample in common: the same dataset with common indices, or rows of one tensor storage in common (a slice of the
    test images is test images; its even and odd rows are not). Equal copies in distinct memory are not detected."""
    if a is b:
        return True
    (base_a, idx_a), (base_b, idx_b) = _rows(a), _rows(b)
    if isinstance(base_a, Tensor) and isinstance(base_b, Tensor):
        if (
            base_a.device != base_b.device
            or base_a.untyped_storage().data_ptr() != base_b.untyped_storage().data_ptr()
        ):
            return False
        return bool(_row_offsets(base_a, idx_a) & _row_offsets(base_b, idx_b))
    if base_a is not base_b:
        return False
    return idx_a is None or idx_b is None or bool(set(idx_a) & set(idx_b))
