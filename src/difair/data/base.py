"""The in-memory open-set dataset that the engine consumes.

Every dataset (digits, MNIST, SVHN, CIFAR, Tiny ImageNet, a folder) is decoded once into uint8 tensors
``[N, C, H, W]`` at the model's input size. Known classes are relabelled 0..n_c-1 in the order of the split's list;
unknown test samples carry label -1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from difair.config import BALANCE_MODES
from difair.errors import check_choice


@dataclass
class OSRData:
    """One known/unknown split of one dataset, ready to train and evaluate on."""

    name: str
    split: int
    class_names: list[str]  # known classes, in label order
    train_images: Tensor  # uint8 [N, C, H, W]
    train_labels: Tensor  # int64 [N], 0..n_c-1
    test_images: Tensor  # uint8 [M, C, H, W]: known samples first, then unknown
    test_labels: Tensor  # int64 [M], -1 for unknown
    mean: list[float]
    std: list[float]
    test_source_labels: Tensor | None = None  # int64 [M]: class index in the source dataset (unknowns too)
    unknown_class_names: list[str] = field(default_factory=list)  # names by source index, for analyses
    meta: dict[str, Any] = field(default_factory=dict)  # split family, conventions, balance, sizes...
    val_images: Tensor | None = None  # uint8 [V, C, H, W]: known training images held out (data.val_fraction)
    val_labels: Tensor | None = None  # int64 [V], 0..n_c-1
    # named unknown subsets (e.g. the SSB's Easy/Medium/Hard): source labels (as in test_source_labels) of the
    # unknown classes of each; evaluation reports every subset against all known test images
    unknown_subsets: dict[str, list[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.val_images is None) != (self.val_labels is None):
            raise ValueError("val_images and val_labels come together")
        if self.val_labels is not None:
            if len(self.val_images) != len(self.val_labels):
                raise ValueError("images and labels differ in length")
            if len(self.val_labels) and not 0 <= int(self.val_labels.min()) <= int(
                self.val_labels.max()
            ) < len(self.class_names):
                raise ValueError("a validation label is outside the known classes")
        for name in ("train_images", "test_images", "val_images"):
            t = getattr(self, name)
            if t is None:
                continue
            if t.dtype != torch.uint8 or t.dim() != 4:
                raise ValueError(
                    f"{name} must be a uint8 tensor [N, C, H, W], got {t.dtype} {tuple(t.shape)}"
                )
        if len(self.train_images) != len(self.train_labels) or len(self.test_images) != len(self.test_labels):
            raise ValueError("images and labels differ in length")
        if len(self.train_labels) and int(self.train_labels.max()) >= self.num_classes:
            raise ValueError("a training label is outside the known classes")
        if len(self.train_labels) and int(self.train_labels.min()) < 0:
            raise ValueError("training data must not hold unknown (-1) samples")
        if self.unknown_subsets and self.test_source_labels is None:
            raise ValueError("unknown_subsets need test_source_labels to tell the subsets apart")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def channels(self) -> int:
        return int(self.train_images.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.train_images.shape[-1])

    @property
    def has_validation(self) -> bool:
        """Whether known training images were held out as a validation set (``data.val_fraction``)."""
        return self.val_images is not None and len(self.val_images) > 0

    @property
    def n_known_test(self) -> int:
        return int((self.test_labels >= 0).sum())

    @property
    def n_unknown_test(self) -> int:
        return int((self.test_labels < 0).sum())

    def summary(self) -> dict[str, Any]:
        return {
            "dataset": self.name,
            "split": self.split,
            "known_classes": self.class_names,
            "n_train": len(self.train_labels),
            "n_val": 0 if self.val_labels is None else len(self.val_labels),
            "n_known": self.n_known_test,
            "n_unknown": self.n_unknown_test,
            "image_size": self.image_size,
            "channels": self.channels,
            **({"unknown_subsets": self.unknown_subset_sizes()} if self.unknown_subsets else {}),
            **self.meta,
        }

    def unknown_subset_masks(self) -> dict[str, Tensor]:
        """Per named unknown subset, the boolean mask ``[M]`` of the test samples it evaluates: every known
        test sample and the unknown ones whose source class is in the subset."""
        if not self.unknown_subsets:
            return {}
        known = self.test_labels >= 0
        out = {}
        for name, classes in self.unknown_subsets.items():
            member = torch.isin(self.test_source_labels, torch.as_tensor(classes, dtype=torch.int64))
            out[name] = known | (~known & member)
        return out

    def unknown_subset_sizes(self) -> dict[str, dict[str, int]]:
        """Per named unknown subset, its number of classes and of unknown test images."""
        masks = self.unknown_subset_masks()
        unknown = self.test_labels < 0
        return {
            name: {
                "classes": len(self.unknown_subsets[name]),
                "n_unknown": int((masks[name] & unknown).sum()),
            }
            for name in self.unknown_subsets
        }


def channel_stats(images: Tensor, chunk: int = 256) -> tuple[list[float], list[float]]:
    """Per-channel mean and (population) std of uint8 images, on [0, 1] pixels.

    Summed in float64 over chunks of ``chunk`` images, so 448 px datasets never hold a float copy in memory.
    """
    c = images.shape[1]
    total = torch.zeros(c, dtype=torch.float64)
    squares = torch.zeros(c, dtype=torch.float64)
    chunks = (
        images.chunks(chunk)  # StreamImages (difair.data.stream): decoded in its worker processes
        if hasattr(images, "chunks")
        else (images[i : i + chunk] for i in range(0, len(images), chunk))
    )
    for part in chunks:
        x = part.to(torch.float64).div_(255)
        total += x.sum(dim=(0, 2, 3))
        squares += x.square().sum(dim=(0, 2, 3))
    n = max(1, images.numel() // max(1, c))
    mean = total / n
    std = (squares / n - mean.square()).clamp_min(0).sqrt().clamp_min(1e-6)
    return [round(float(v), 6) for v in mean], [round(float(v), 6) for v in std]


def balance_indices(n_known: int, n_unknown: int, mode: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices that make the known and unknown test sets equal in size (the larger one is subsampled).

    ``without_replacement`` (the DIFAIR authors) draws a random subset; ``with_replacement`` (Vaze et al.)
    draws with replacement; ``none`` keeps everything.
    """
    rng = np.random.default_rng(seed)
    k, u = np.arange(n_known), np.arange(n_unknown)
    if mode == "none" or n_known == n_unknown:
        return k, u
    check_choice("data.balance", mode, BALANCE_MODES)
    replace = mode == "with_replacement"
    if n_known > n_unknown:
        return np.sort(rng.choice(n_known, n_unknown, replace=replace)), u
    return k, np.sort(rng.choice(n_unknown, n_known, replace=replace))


def select_known(labels: np.ndarray, known: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Mask of samples whose label is in ``known`` and their labels remapped in list order."""
    labels = np.asarray(labels)
    lookup = {c: i for i, c in enumerate(known)}
    mask = np.isin(labels, known)
    remapped = np.array([lookup[v] for v in labels[mask]], dtype=np.int64)
    return mask, remapped


@dataclass
class Part:
    """One part of a split: uint8 images ``[N, C, H, W]``, their labels (known classes, remapped; None for
    unknowns) and their labels in the source dataset (None when not tracked)."""

    images: Tensor
    labels: np.ndarray | None = None
    source: np.ndarray | None = None


def assemble(
    name: str,
    split: int,
    class_names: list[str],
    train: Part,
    known: Part,
    unknown: Part,
    *,
    balance: str,
    balance_seed: int,
    mean: list[float] | None = None,
    std: list[float] | None = None,
    unknown_class_names: list[str] | None = None,
    meta: dict[str, Any] | None = None,
    unknown_subsets: dict[str, list[int]] | None = None,
) -> OSRData:
    """Balance the test sets, concatenate known then unknown, compute normalisation if not given."""
    ki, ui = balance_indices(len(known.images), len(unknown.images), balance, balance_seed)
    test_images = torch.cat([known.images[torch.as_tensor(ki)], unknown.images[torch.as_tensor(ui)]])
    test_labels = torch.cat(
        [
            torch.as_tensor(np.asarray(known.labels)[ki], dtype=torch.int64),
            torch.full((len(ui),), -1, dtype=torch.int64),
        ]
    )
    source = None
    if known.source is not None and unknown.source is not None:
        source = torch.as_tensor(
            np.concatenate([np.asarray(known.source)[ki], np.asarray(unknown.source)[ui]]),
            dtype=torch.int64,
        )
    if mean is None or std is None:
        mean, std = channel_stats(train.images)
    meta = dict(meta or {})
    meta.update({"balance": balance, "balance_seed": balance_seed})
    return OSRData(
        name=name,
        split=split,
        class_names=list(class_names),
        train_images=train.images.contiguous(),
        train_labels=torch.as_tensor(np.asarray(train.labels), dtype=torch.int64),
        test_images=test_images.contiguous(),
        test_labels=test_labels,
        mean=list(mean),
        std=list(std),
        test_source_labels=source,
        unknown_class_names=list(unknown_class_names or []),
        meta=meta,
        unknown_subsets={k: [int(c) for c in v] for k, v in (unknown_subsets or {}).items()},
    )
