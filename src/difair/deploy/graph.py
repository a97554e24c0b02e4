"""The deployable graph: the Predictor's preprocessing, the model and the method's outputs in one module."""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from difair.data.framing import crop_offsets
from difair.methods import Method
from difair.nn.backbones import OSRModel

INPUT_NAME = "images"
OUTPUT_NAMES = ("score", "per_class", "nearest")


class DeployModule(nn.Module):
    """``images`` float32 ``[B, C, H, W]`` in [0, 1] at the run's input size -> ``(score, per_class, nearest)``.

    What ``difair.predict.Predictor`` does to an image already at ``input_size``: clamp to [0, 1], centre-crop
    to the run's ``image_size`` (``data.crop_pct``), normalise (inside ``OSRModel``), then the method's
    ``scores[score_name]``, ``per_class`` and ``predict`` through the ``Method`` interface.
    """

    def __init__(self, model: OSRModel, method: Method, score_name: str, image_size: int, input_size: int):
        super().__init__()
        method.check_score(score_name)
        self.model = copy.deepcopy(model).float().eval()  # fp32 as collect_outputs, never the caller's model
        self.method = method
        self.score_name = score_name
        self.image_size = image_size
        self.input_size = input_size
        # center_crop's window, found once (tracing makes shapes tensors, which its rounding refuses); H and W of
        # the input are fixed, so the window is a constant slice
        self.top, self.left = crop_offsets(input_size, input_size, image_size)
        self.eval()

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        t, left, s = self.top, self.left, self.image_size
        images = check_input(images, int(self.model.mean.numel()), self.input_size)
        x = images.clamp(0, 1)[:, :, t : t + s, left : left + s]
        out = self.model(x)
        head = self.model.head
        score = self.method.scores(out, head)[self.score_name]
        return score, self.method.per_class(out, head), self.method.predict(out, head)


@torch.jit.script_if_tracing  # kept as code in a traced graph: a traced shape check would be a constant
def check_input(images: Tensor, channels: int, size: int) -> Tensor:
    """``images`` when they are float ``[B, channels, size, size]``; an error naming the shape otherwise (a constant
    crop window on a larger image would score its corner) or the dtype (0-255 pixels, clamped to [0, 1], would
    score a black-and-white image)."""
    if not images.is_floating_point():
        raise ValueError(
            f"images must be float in [0, 1], got {images.dtype}: divide 0-255 pixels by 255, as the README beside "
            "the model says"
        )
    if images.dim() != 4 or images.shape[1] != channels or images.shape[2] != size or images.shape[3] != size:
        raise ValueError(
            f"images must be [batch, {channels}, {size}, {size}], got {images.shape}: resize (and convert) them "
            "as the README beside the model says"
        )
    return images


def example_input(channels: int, input_size: int, batch: int = 2, seed: int = 0) -> Tensor:
    """Random images in [0, 1] of the exported input's shape (for tracing and the export's self-check)."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, channels, input_size, input_size, generator=g)
