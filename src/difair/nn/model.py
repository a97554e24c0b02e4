"""``OSRModel``: normalisation, backbone and head in one module."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class OSRModel(nn.Module):
    """Normalisation, backbone and head in one module; input images are floats in [0, 1] (or uint8 0-255)."""

    def __init__(
        self,
        backbone: nn.Module,
        head: nn.Module,
        mean: list[float],
        std: list[float],
        freeze_backbone: bool = False,
    ):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.freeze_backbone = freeze_backbone
        if freeze_backbone:
            backbone.requires_grad_(False)
            backbone.eval()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def normalize(self, x: Tensor) -> Tensor:
        if x.dtype == torch.uint8:
            x = x.float().div_(255)
        return (x - self.mean) / self.std

    def train(self, mode: bool = True) -> OSRModel:
        """As ``nn.Module.train``; a frozen backbone stays in eval mode (BatchNorm statistics, dropout off)."""
        super().train(mode)
        if self.freeze_backbone:
            self.backbone.eval()
        return self

    def feature_map(self, x: Tensor) -> Tensor:
        return self.backbone(self.normalize(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.feature_map(x))
