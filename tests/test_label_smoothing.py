"""Label smoothing of the CE baseline: PyTorch's form and Vaze et al.'s, on a hand-computed 3-class example."""

from __future__ import annotations

import math

import pytest
import torch

from difair.config import TrainConfig
from difair.errors import DifairError
from difair.methods import build_method
from difair.nn.functional import smoothed_cross_entropy, smoothed_targets

# softmax(log [1, 2, 1]) = [0.25, 0.5, 0.25]; true class 1; s = 0.2
LOGITS = torch.log(torch.tensor([[1.0, 2.0, 1.0]]))
TARGET = torch.tensor([1])


def test_vaze_form_known_answer() -> None:
    q = smoothed_targets(TARGET, 3, 0.2, "vaze")
    assert torch.allclose(q, torch.tensor([[0.1, 0.8, 0.1]]))  # 1 - s; s / (C - 1)
    # -(0.1 ln 0.25 + 0.8 ln 0.5 + 0.1 ln 0.25) = 0.2 ln 4 + 0.8 ln 2 = 1.2 ln 2
    loss = smoothed_cross_entropy(LOGITS, TARGET, 0.2, "vaze")
    assert float(loss) == pytest.approx(1.2 * math.log(2), abs=1e-6)


def test_pytorch_form_known_answer_and_equals_torch() -> None:
    q = smoothed_targets(TARGET, 3, 0.2, "pytorch")
    third = 0.2 / 3
    assert torch.allclose(q, torch.tensor([[third, 0.8 + third, third]]))  # 1 - s + s/C; s/C
    # 2 (s/3) ln 4 + (0.8 + s/3) ln 2 = (0.8 + 5 s / 3) ln 2
    expected = (0.8 + 5 * 0.2 / 3) * math.log(2)
    loss = smoothed_cross_entropy(LOGITS, TARGET, 0.2, "pytorch")
    assert float(loss) == pytest.approx(expected, abs=1e-6)
    explicit = -(q * torch.log_softmax(LOGITS, 1)).sum()
    assert float(explicit) == pytest.approx(expected, abs=1e-6)
    torch_loss = torch.nn.functional.cross_entropy(LOGITS, TARGET, label_smoothing=0.2)
    assert float(torch_loss) == pytest.approx(expected, abs=1e-6)


def test_no_smoothing_is_plain_cross_entropy_in_both_forms() -> None:
    logits = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    target = torch.tensor([0, 3, 1, 2, 3])
    plain = torch.nn.functional.cross_entropy(logits, target)
    for form in ("pytorch", "vaze"):
        assert torch.allclose(smoothed_cross_entropy(logits, target, 0.0, form), plain)


def test_ce_method_uses_the_configured_form() -> None:
    cfg = TrainConfig.from_dict(
        {"method": "ce", "ce": {"label_smoothing": 0.2, "label_smoothing_form": "vaze"}}
    )
    cfg.validate()
    method = build_method("ce", cfg.ce, 3)
    loss = method.loss_terms(LOGITS, TARGET, head=None)["loss"]
    assert float(loss) == pytest.approx(1.2 * math.log(2), abs=1e-6)
    cfg.ce.label_smoothing_form = "pytorch"
    loss = build_method("ce", cfg.ce, 3).loss_terms(LOGITS, TARGET, head=None)["loss"]
    assert float(loss) == pytest.approx((0.8 + 1 / 3) * math.log(2), abs=1e-6)
    assert TrainConfig().ce.label_smoothing_form == "pytorch"  # the default keeps today's behaviour
    cfg.ce.label_smoothing_form = "keras"
    with pytest.raises(DifairError, match="ce.label_smoothing_form"):
        cfg.validate()
