"""Open-set datasets, splits, augmentation and caches."""

from difair.data.base import OSRData, balance_indices, channel_stats
from difair.data.registry import available_datasets, default_root, get_dataset, register_dataset

__all__ = [
    "OSRData",
    "balance_indices",
    "channel_stats",
    "available_datasets",
    "default_root",
    "get_dataset",
    "register_dataset",
]
