"""Whether two data arguments share samples: ``evaluate`` refuses detectors fitted on a test set."""

from __future__ import annotations

from typing import Any

from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from difair.eval.posthoc.base import FeatureSet


def _source(data: Any) -> Any:
    """What ``data`` reads its samples from: a loader's dataset; the first tensor of a tuple, TensorDataset or
    FeatureSet."""
    if isinstance(data, DataLoader):
        data = data.dataset
    if isinstance(data, FeatureSet):
        return data.logits
    if isinstance(data, TensorDataset):
        return data.tensors[0]
    if isinstance(data, tuple) and data:
        return data[0]
    return data


def _base(data: Any) -> tuple[Any, set[int] | None]:
    """A (nested) Subset as its base dataset and the indices it takes there; anything else with None (all)."""
    indices: list[int] | None = None
    while isinstance(data, Subset):
        idx = [int(i) for i in data.indices]
        indices = idx if indices is None else [idx[i] for i in indices]
        data = data.dataset
    return data, None if indices is None else set(indices)


def _tensors_overlap(a: Tensor, b: Tensor) -> bool:
    """Whether two tensors are views of overlapping memory (a slice of the test images is the test images)."""
    if a.device != b.device or a.untyped_storage().data_ptr() != b.untyped_storage().data_ptr():
        return False
    (a0, a1), (b0, b1) = _span(a), _span(b)
    return a0 < b1 and b0 < a1


def _span(t: Tensor) -> tuple[int, int]:
    """The byte range ``[start, end)`` a tensor's elements occupy."""
    last = (
        sum((size - 1) * stride for size, stride in zip(t.shape, t.stride(), strict=True))
        if t.numel()
        else -1
    )
    return t.data_ptr(), t.data_ptr() + (last + 1) * t.element_size()


def shares_samples(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` (loaders, datasets, Subsets, tensors, ``(x, y)`` tuples or FeatureSets) hold any
    sample in common: the same object, a loader over it, a Subset with common indices, or overlapping tensor
    memory. Equal copies in distinct memory are not detected."""
    if a is b:
        return True
    a, b = _source(a), _source(b)
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        return _tensors_overlap(a, b)
    if isinstance(a, Dataset) and isinstance(b, Dataset):
        (base_a, idx_a), (base_b, idx_b) = _base(a), _base(b)
        return base_a is base_b and (idx_a is None or idx_b is None or bool(idx_a & idx_b))
    return a is b
