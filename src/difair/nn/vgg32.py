"""VGG32 ("classifier32"), the backbone of Neal et al., Vaze et al. and the DIFAIR paper.

Returns the last feature map (128 channels; 4x4 for 32x32 input). The deviations from the authors' Keras model
are options, listed in docs/fidelity.md.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from difair.nn.dropout import make_dropout

PADDINGS = ("symmetric", "tf")  # model.padding: PyTorch symmetric | TF "same" (the authors)

# (out_channels, stride) of the nine 3x3 convs; the widths are scaled by ``width``.
_LAYOUT = ((64, 1), (64, 1), (128, 2), (128, 1), (128, 1), (128, 2), (128, 1), (128, 1), (128, 2))


class _Conv(nn.Module):
    """3x3 conv (no bias) -> BN -> LeakyReLU(0.2), with symmetric or TensorFlow-style 'same' padding."""

    def __init__(self, cin: int, cout: int, stride: int, padding: str, bn_momentum: float, bn_eps: float):
        super().__init__()
        self.tf_pad = padding == "tf" and stride == 2
        self.conv = nn.Conv2d(cin, cout, 3, stride, 0 if self.tf_pad else 1, bias=False)
        self.bn = nn.BatchNorm2d(cout, momentum=bn_momentum, eps=bn_eps)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: Tensor) -> Tensor:
        if self.tf_pad:
            x = F.pad(x, (*_tf_same_pad(x.shape[-1]), *_tf_same_pad(x.shape[-2])))
        return self.act(self.bn(self.conv(x)))


def _tf_same_pad(size: int, kernel: int = 3, stride: int = 2) -> tuple[int, int]:
    """TF 'same' padding (before, after) of one axis: the total is split with the extra pixel after.

    Even input with stride 2 gives (0, 1), the authors' asymmetric case; odd input gives (1, 1).
    """
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class VGG32(nn.Module):
    """The nine-conv VGG32 body: three blocks, each ``dropout -> conv, conv, conv(stride 2)``.

    Args:
        in_channels: 1 for MNIST kept grey, 3 otherwise.
        dropout: drop probability at the input of each block (0.2 in all references).
        dropout_kind: ``"element"`` (Keras Dropout, the authors' code) or ``"channel"`` (Dropout2d, Vaze).
        dropout_backend: ``"torch"`` (nn.Dropout) or ``"fast"`` (the same mask drawn faster on CPU:
            ``difair.nn.dropout``).
        padding: ``"symmetric"`` (PyTorch padding=1, Vaze) or ``"tf"`` (TF "same": the authors' asymmetric
            stride-2 padding).
        bn_momentum: BatchNorm momentum (PyTorch convention; the Keras default 0.99 is 0.01 here).
        bn_eps: BatchNorm epsilon (the Keras default is 1e-3).
        width: channel multiplier (1.0 is the paper's network).
    """

    def __init__(
        self,
        in_channels: int = 3,
        dropout: float = 0.2,
        dropout_kind: str = "element",
        dropout_backend: str = "torch",
        padding: str = "symmetric",
        bn_momentum: float = 0.1,
        bn_eps: float = 1e-5,
        width: float = 1.0,
    ):
        super().__init__()
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
        layers: list[nn.Module] = []
        cin = in_channels
        for i, (cout, stride) in enumerate(_LAYOUT):
            if i % 3 == 0:
                layers.append(make_dropout(dropout, dropout_kind, dropout_backend))
            cout = max(1, round(cout * width))
            layers.append(_Conv(cin, cout, stride, padding, bn_momentum, bn_eps))
            cin = cout
        self.body = nn.Sequential(*layers)
        self.out_channels = cin
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Conv weights N(0, 0.05) as in both reference codes; BN gamma=1, beta=0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.05)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


def vgg32_output_size(image_size: int) -> int:
    """Spatial size of VGG32's last feature map for a square input."""
    size = image_size
    for _ in range(3):
        size = (size + 1) // 2
    return size


__all__ = ["VGG32", "vgg32_output_size"]
