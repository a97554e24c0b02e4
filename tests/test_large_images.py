"""Full-resolution images: the dataset resize works in chunks and evaluation batches shrink with image size."""

import torch
from torch import nn

import difair.data.framing as framing
from difair.engine.batching import EVAL_BATCH_PIXELS, eval_batch, eval_chunks
from difair.engine.evaluate import collect_outputs


def _one_shot(images, size, crop_pct=None):
    side = framing.resize_size(size, crop_pct)
    out = nn.functional.interpolate(
        images.float(), size=(side, side), mode="bilinear", align_corners=False, antialias=True
    )
    return framing.center_crop(out.round_().clamp_(0, 255).to(torch.uint8), size)


def test_chunked_resize_equals_one_shot(monkeypatch):
    images = torch.randint(
        0, 256, (37, 3, 20, 24), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    monkeypatch.setattr(framing, "RESIZE_CHUNK_VALUES", 5000)  # a few images a chunk, and a ragged last chunk
    for size, crop_pct in [(16, None), (32, 0.875), (24, None), (20, 0.9)]:
        got = framing.resize_crop_uint8(images, size, crop_pct)
        assert got.dtype == torch.uint8 and got.shape == (37, 3, size, size)
        assert torch.equal(got, _one_shot(images, size, crop_pct)), (size, crop_pct)


def test_resize_at_own_side_only_crops():
    images = torch.randint(0, 256, (4, 3, 36, 36), dtype=torch.uint8)
    assert framing.resize_crop_uint8(images, 36) is images
    assert torch.equal(framing.resize_crop_uint8(images, 32, 32 / 36), images[..., 2:34, 2:34])


def test_eval_batch_known_answers():
    assert EVAL_BATCH_PIXELS == 512 * 64 * 64
    assert eval_batch(512, torch.empty(1, 3, 32, 32)) == 512
    assert eval_batch(512, torch.empty(1, 3, 64, 64)) == 512
    assert eval_batch(512, torch.empty(0, 3, 224, 224)) == 41  # 2,097,152 // 50,176
    assert eval_batch(512, torch.empty(0, 3, 448, 448)) == 10
    assert eval_batch(8, torch.empty(0, 3, 224, 224)) == 8  # a smaller request wins
    assert eval_batch(512, torch.empty(0, 3, 2048, 2048)) == 1  # never 0
    chunks = list(eval_chunks(torch.arange(100).view(100, 1, 1, 1).expand(100, 3, 224, 224), 512))
    assert [len(c) for c in chunks] == [41, 41, 18]
    assert torch.equal(torch.cat(chunks)[:, 0, 0, 0], torch.arange(100))  # in order, none lost


class _Recorder(nn.Module):
    def __init__(self):
        super().__init__()
        self.sizes: list[int] = []

    def forward(self, x):
        self.sizes.append(len(x))
        return x.float().flatten(1).mean(1, keepdim=True)  # uint8 in, as OSRModel takes


def test_collect_outputs_batches_shrink_at_full_resolution():
    images = torch.randint(0, 256, (100, 3, 224, 224), dtype=torch.uint8)
    model = _Recorder()
    out = collect_outputs(model, images, 512, torch.device("cpu"))
    assert model.sizes == [41, 41, 18]
    assert torch.allclose(out[:, 0], images.float().flatten(1).mean(1))
