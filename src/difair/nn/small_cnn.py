"""A five-conv network for tiny images (the digits demo's backbone)."""

from __future__ import annotations

from torch import Tensor, nn

from difair.nn.dropout import make_dropout


class SmallCNN(nn.Module):
    """A five-conv network for tiny images (the digits demo): 3x3 convs with BatchNorm and LeakyReLU(0.2),
    widths ``w, w, 2w, 2w, 2w`` (``w = 32 * width``), stride 2 at the third and fifth conv (``strides``; ``small_cnn8`` keeps only the third's), dropout before the fourth.

    On 16x16 input its last map is 4x4, as VGG32's is on 32x32, at about a twentieth of VGG32's cost.
    """

    def __init__(
        self,
        in_channels: int = 1,
        width: float = 1.0,
        dropout: float = 0.1,
        dropout_backend: str = "torch",
        strides: tuple[int, ...] = (1, 1, 2, 1, 2),
    ):
        super().__init__()
        w = max(1, round(32 * width))
        layers: list[nn.Module] = []
        channels = [(in_channels, w), (w, w), (w, 2 * w), (2 * w, 2 * w), (2 * w, 2 * w)]
        for i, ((cin, cout), stride) in enumerate(zip(channels, strides, strict=True)):
            if i == 3:
                layers.append(make_dropout(dropout, "element", dropout_backend))
            layers += [
                nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
                nn.BatchNorm2d(cout),
                nn.LeakyReLU(0.2),
            ]
        self.body = nn.Sequential(*layers)
        self.out_channels = 2 * w

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)
