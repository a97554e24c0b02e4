"""torchvision's CIFAR10, CIFAR100 and SVHN with a ``verify`` option (md5 check of the files, on by default).

Imported by the loaders only when they read these files: ``torchvision.datasets`` takes seconds to import.
"""

from __future__ import annotations

from torchvision.datasets import CIFAR10, CIFAR100, SVHN


class _Unverified:
    """Mixin: with ``verify=False`` torchvision only checks that the pickles exist, not their md5 sums."""

    def _strip_md5(self) -> None:
        self.train_list = [[name, None] for name, _ in self.train_list]
        self.test_list = [[name, None] for name, _ in self.test_list]
        self.meta = {**self.meta, "md5": None}


class CheckedCIFAR10(_Unverified, CIFAR10):
    """torchvision's CIFAR10 with a ``verify`` option (md5 check of the pickles, on by default)."""

    def __init__(self, root: str, train: bool, download: bool = False, verify: bool = True) -> None:
        if not verify:
            self._strip_md5()
        super().__init__(root, train=train, download=download)


class CheckedCIFAR100(_Unverified, CIFAR100):
    """torchvision's CIFAR100 with a ``verify`` option (md5 check of the pickles, on by default)."""

    def __init__(self, root: str, train: bool, download: bool = False, verify: bool = True) -> None:
        if not verify:
            self._strip_md5()
        super().__init__(root, train=train, download=download)


class CheckedSVHN(SVHN):
    """torchvision's SVHN; ``verify=False`` only checks that the file exists, skipping the md5 check."""

    def __init__(self, root: str, split: str, download: bool = False, verify: bool = True) -> None:
        if not verify:
            self.split_list = {k: [url, name, None] for k, (url, name, _md5) in SVHN.split_list.items()}
        super().__init__(root, split=split, download=download)
