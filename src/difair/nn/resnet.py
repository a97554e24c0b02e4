"""torchvision's ResNet-18 as a feature extractor (its last map), from scratch with a CIFAR stem or from weights."""

from __future__ import annotations

from torch import Tensor, nn

from difair.errors import DifairError
from difair.nn import pretrained as P


class ResNet18Features(nn.Module):
    """torchvision ResNet-18 without its pooling and fc; ``cifar_stem`` uses a 3x3 stride-1 stem for 32x32 images.

    ``pretrained``: torchvision's ImageNet weights (``IMAGENET1K_V1``, from its cache); ``weights``: a local state
    dict in torchvision's names. Both keep the ImageNet stem (``cifar_stem`` is ignored).
    """

    def __init__(
        self,
        in_channels: int = 3,
        cifar_stem: bool = True,
        pretrained: bool = False,
        weights: str | None = None,
        load_weights: bool = True,
        **_: object,
    ):
        super().__init__()
        from torchvision.models import ResNet18_Weights, resnet18  # start-up time: torchvision.models is slow

        net = resnet18(weights=None)
        if pretrained or weights:
            cifar_stem = False
            if in_channels != 3:
                raise DifairError("pretrained resnet18 weights take 3-channel images: use an RGB dataset")
        if (pretrained or weights) and load_weights:
            state = (
                P.read_state_dict(weights)
                if weights
                else P.fetch(
                    "resnet18",
                    P.torch_hub_dir(),
                    lambda: ResNet18_Weights.IMAGENET1K_V1.get_state_dict(progress=False),
                )
            )
            P.load_checked(net, state, f"weights {weights or 'resnet18 IMAGENET1K_V1'}", classifier=("fc",))
        if cifar_stem:
            net.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
            net.maxpool = nn.Identity()
        elif in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.body = nn.Sequential(
            net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4
        )
        self.out_channels = 512

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)
