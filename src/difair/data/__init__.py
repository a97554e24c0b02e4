"""Open-set datasets, splits, augmentation and caches."""

# Importing the loader modules registers their datasets (``@register_dataset`` beside each loader).
from difair.data import cifar, digits, fgvc, folder, imagenet_ssb, mnist, svhn, tinyimagenet  # noqa: F401
from difair.data.base import OSRData, balance_indices, channel_stats
from difair.data.registry import available_datasets, check_dataset_name, get_dataset, register_dataset
from difair.data.root import default_root

__all__ = [
    "OSRData",
    "balance_indices",
    "channel_stats",
    "available_datasets",
    "check_dataset_name",
    "default_root",
    "get_dataset",
    "register_dataset",
]
