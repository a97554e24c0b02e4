"""Modules of DIFAIR and its baselines over the functional core ``difair.nn.functional``."""

from difair.nn import functional
from difair.nn.backbones import OSRModel, available_backbones, create_backbone, register_backbone
from difair.nn.heads import CACHead, DifairHead, LinearHead
from difair.nn.losses import CACLoss, DifairLoss
from difair.nn.vgg32 import VGG32

__all__ = [
    "functional",
    "DifairHead",
    "DifairLoss",
    "LinearHead",
    "CACHead",
    "CACLoss",
    "VGG32",
    "OSRModel",
    "create_backbone",
    "register_backbone",
    "available_backbones",
]
