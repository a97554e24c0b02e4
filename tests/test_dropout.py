"""The fast CPU dropout: same distribution, scaling and gradient as F.dropout; wired through the config."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from difair.config import TrainConfig, apply_overrides
from difair.errors import DifairError
from difair.nn.backbones import SmallCNN
from difair.nn.dropout import FastDropout, fast_dropout, make_dropout
from difair.nn.vgg32 import VGG32


def _seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("p", [0.2, 0.5, 0.9])
def test_keep_fraction_matches_one_minus_p(p):
    n = 1_000_000
    out = fast_dropout(torch.ones(n), p, generator=_seeded())
    kept = (out != 0).float().mean().item()
    sigma = (p * (1 - p) / n) ** 0.5
    assert abs(kept - (1 - p)) < 5 * sigma, (kept, 1 - p)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_kept_elements_are_scaled_and_dropped_are_zero(dtype):
    x = (torch.rand(64, 8, 5, 5, generator=_seeded(1)) + 0.5).to(dtype)
    out = fast_dropout(x, 0.2, generator=_seeded(2))
    kept = out != 0
    assert 0 < kept.sum() < x.numel()
    scale = torch.tensor(1 / 0.8, dtype=dtype)  # rounded to dtype, as F.dropout's noise is
    torch.testing.assert_close(out[kept], x[kept] * scale, rtol=0, atol=0)
    assert out.dtype == dtype


def test_mask_is_independent_across_elements_and_channels():
    # a mask shared along an axis (a channel mask, or a bug that reuses random bits) shows as correlation
    out = fast_dropout(
        torch.ones(512, 16, 8, 8).contiguous(memory_format=torch.channels_last), 0.5, generator=_seeded()
    )
    keep = (out != 0).float()
    for a, b in [(keep[:, 0], keep[:, 1]), (keep[..., 0], keep[..., 1]), (keep[:256], keep[256:])]:
        corr = torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1].abs().item()
        assert corr < 0.02, corr
    # every position keeps about half: a biased half of the random bits would show here
    per_channel = keep.mean(dim=(0, 2, 3))
    assert (per_channel - 0.5).abs().max() < 0.02, per_channel


def test_gradient_is_the_mask_times_the_scale():
    x = torch.randn(32, 4, 6, 6, requires_grad=True)
    out = fast_dropout(x, 0.3, generator=_seeded(3))
    out.sum().backward()
    expected = (out.detach() != 0).float() / 0.7
    torch.testing.assert_close(x.grad, expected)


def test_seeded_generator_reproduces_the_mask_and_other_seeds_differ():
    x = torch.ones(4096)
    a = fast_dropout(x, 0.2, generator=_seeded(5))
    assert torch.equal(a, fast_dropout(x, 0.2, generator=_seeded(5)))
    assert not torch.equal(a, fast_dropout(x, 0.2, generator=_seeded(6)))


def test_channels_last_layout_is_kept():
    x = torch.randn(8, 16, 4, 4).contiguous(memory_format=torch.channels_last)
    out = fast_dropout(x, 0.2)
    assert out.is_contiguous(memory_format=torch.channels_last)


def test_identity_in_eval_and_at_p_zero_zero_at_p_one_error_outside():
    x = torch.randn(10, 10)
    assert fast_dropout(x, 0.5, training=False) is x
    assert fast_dropout(x, 0.0) is x
    assert torch.count_nonzero(fast_dropout(x, 1.0)) == 0
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        fast_dropout(x, 1.5)


def test_module_is_a_dropout_and_follows_train_eval():
    m = FastDropout(0.5)
    assert isinstance(m, nn.Dropout) and m.state_dict() == {}
    x = torch.ones(1000)
    assert torch.count_nonzero(m(x)) < 1000
    m.eval()
    assert torch.equal(m(x), x)


def test_make_dropout_and_backbones_pick_the_backend():
    assert type(make_dropout(0.2, "element", "torch")) is nn.Dropout
    assert type(make_dropout(0.2, "element", "fast")) is FastDropout
    assert type(make_dropout(0.2, "channel", "fast")) is nn.Dropout2d
    with pytest.raises(ValueError, match="backend"):
        make_dropout(0.2, "element", "cuda")
    vgg = VGG32(dropout_backend="fast")
    assert sum(isinstance(m, FastDropout) for m in vgg.modules()) == 3
    assert sum(isinstance(m, FastDropout) for m in SmallCNN(dropout_backend="fast").modules()) == 1
    assert not any(isinstance(m, FastDropout) for m in VGG32().modules())


def test_config_validates_and_builds_the_backend():
    from difair.engine.build import build_model

    cfg = TrainConfig.from_dict(apply_overrides(TrainConfig().to_dict(), ["model.dropout_backend=fast"]))
    model, _ = build_model(cfg.resolve(), 6, 3, [0.0] * 3, [1.0] * 3)
    assert sum(isinstance(m, FastDropout) for m in model.modules()) == 3
    bad = TrainConfig.from_dict(apply_overrides(TrainConfig().to_dict(), ["model.dropout_backend=bernoulli"]))
    with pytest.raises(DifairError, match="dropout_backend"):
        bad.resolve()
