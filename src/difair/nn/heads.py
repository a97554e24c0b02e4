"""Heads that turn a backbone's feature map into a method's output."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from difair.nn import functional as DF


class DifairHead(nn.Module):
    """DIFAIR head: a kxk conv with ``N*n_c`` filters (no bias), ReLU, global average pooling; returns z.

    Filters ``[c*N, (c+1)*N)`` belong to class ``c``. ``feature_maps`` gives the maps before pooling.
    """

    def __init__(self, in_channels: int, num_classes: int, features_per_class: int = 5, kernel_size: int = 3):
        super().__init__()
        if num_classes < 1 or features_per_class < 1:
            raise ValueError("num_classes and features_per_class must be >= 1")
        self.num_classes = num_classes
        self.features_per_class = features_per_class
        self.conv = nn.Conv2d(
            in_channels, num_classes * features_per_class, kernel_size, padding=kernel_size // 2, bias=False
        )
        nn.init.xavier_uniform_(self.conv.weight)  # Keras glorot_uniform, as the authors' last_conv

    @property
    def weight(self) -> Tensor:
        return self.conv.weight

    def feature_maps(self, x: Tensor) -> Tensor:
        """Per-filter activation maps ``[B, N*n_c, h, w]`` after ReLU, before pooling."""
        return torch.relu(self.conv(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.feature_maps(x).mean(dim=(2, 3))


class LinearHead(nn.Module):
    """Global average pooling then a bias-free linear layer: the CE (and CAC) head of VGG32."""

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.fc = nn.Linear(in_channels, num_classes, bias=False)

    def pooled(self, x: Tensor) -> Tensor:
        return x.mean(dim=(2, 3)) if x.dim() == 4 else x

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.pooled(x))


class CACHead(LinearHead):
    """Linear logit head with CAC's fixed anchors ``alpha * e_c`` held as a buffer (replaceable by class means)."""

    def __init__(self, in_channels: int, num_classes: int, alpha: float = 10.0):
        super().__init__(in_channels, num_classes)
        self.register_buffer("anchors", DF.class_anchors(num_classes, 1, alpha))

    def distances(self, logits: Tensor) -> Tensor:
        return DF.anchor_distances(DF.widen(logits), self.anchors)


__all__ = ["DifairHead", "LinearHead", "CACHead"]
