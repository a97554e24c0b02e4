"""Tests of the modules: VGG32 (parameter counts of reference notes 1.1, sizes, padding, dropout), the heads,
the loss modules, and a tiny end-to-end DIFAIR fit."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from difair.eval import scores as S
from difair.nn import CACHead, CACLoss, DifairHead, DifairLoss, LinearHead
from difair.nn import functional as DF
from difair.nn.vgg32 import VGG32, _Conv, vgg32_output_size


def _trainable(*modules: nn.Module) -> int:
    return sum(p.numel() for m in modules for p in m.parameters() if p.requires_grad)


@pytest.fixture(scope="module")
def vgg3() -> VGG32:
    return VGG32(in_channels=3).eval()


# --------------------------------------------------------------------------------------------- VGG32


def test_vgg32_body_parameter_count(vgg3: VGG32) -> None:
    # conv weights 997,056 (3*64*9 + 64*64*9 + 64*128*9 + 6*128*128*9) + BN gamma/beta 2*(64+64+7*128) = 2,048
    assert _trainable(vgg3) == 997_056 + 2_048
    convs = sum(m.weight.numel() for m in vgg3.modules() if isinstance(m, nn.Conv2d))
    assert convs == 997_056
    assert all(m.bias is None for m in vgg3.modules() if isinstance(m, nn.Conv2d))
    # the Keras "non-trainable" BN statistics are buffers here: 2,048 running mean/var entries
    stats = sum(b.numel() for n, b in vgg3.named_buffers() if n.endswith(("running_mean", "running_var")))
    assert stats == 2_048


@pytest.mark.parametrize(
    ("in_channels", "n_c", "expected"),
    [
        (3, 6, 1_033_664),  # CIFAR10 / SVHN, head 128*9*30 = 34,560
        (1, 6, 1_032_512),  # MNIST kept grey: conv1 has 1*64*9 = 576 weights
        (3, 20, 1_114_304),  # TinyImageNet, head 128*9*100 = 115,200
        (3, 4, 1_022_144),  # CIFAR+10/+50, head 23,040
    ],
)
def test_vgg32_difair_parameter_counts_match_reference_table(
    in_channels: int, n_c: int, expected: int
) -> None:
    body = VGG32(in_channels=in_channels)
    head = DifairHead(body.out_channels, n_c, features_per_class=5)
    assert _trainable(body, head) == expected


def test_vgg32_output_sizes(vgg3: VGG32) -> None:
    with torch.no_grad():
        assert vgg3(torch.zeros(2, 3, 32, 32)).shape == (2, 128, 4, 4)
        assert vgg3(torch.zeros(1, 3, 64, 64)).shape == (1, 128, 8, 8)
    assert vgg3.out_channels == 128
    assert [vgg32_output_size(s) for s in (32, 64, 28, 16, 7)] == [4, 8, 4, 2, 1]


def test_vgg32_tf_padding_same_shape_different_values(vgg3: VGG32) -> None:
    tf = VGG32(in_channels=3, padding="tf").eval()
    tf.load_state_dict(vgg3.state_dict())  # same weights, only the stride-2 padding differs
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = vgg3(x), tf(x)
    assert a.shape == b.shape == (2, 128, 4, 4)
    assert not torch.allclose(a, b, atol=1e-3)


@pytest.mark.parametrize("size", [28, 12, 7])
def test_vgg32_tf_padding_odd_sizes(size: int) -> None:
    # 28 -> 14 -> 7 -> 4: TF 'same' pads an odd axis (1, 1), so the output size is ceil(size/2) like PyTorch's
    net = VGG32(in_channels=1, padding="tf", width=0.125).eval()
    with torch.no_grad():
        out = net(torch.zeros(1, 1, size, size))
    assert out.shape[-2:] == (vgg32_output_size(size),) * 2


def _ones_conv(padding: str) -> _Conv:
    """Single-channel stride-2 conv, all-ones 3x3 kernel; BN (eval, mean 0, var 1, eps 0) is the identity."""
    m = _Conv(1, 1, 2, padding, bn_momentum=0.1, bn_eps=0.0).eval()
    nn.init.ones_(m.conv.weight)
    return m


def test_tf_padding_hand_values() -> None:
    x = torch.arange(16.0).view(1, 1, 4, 4)
    # TF 'same', stride 2, even input: pad 0 top/left, 1 bottom/right. Windows rows/cols {0,1,2} and {2,3}:
    #   [0,1,2,4,5,6,8,9,10] = 45 | [2,3,6,7,10,11] = 39 | [8,9,10,12,13,14] = 66 | [10,11,14,15] = 50
    with torch.no_grad():
        assert torch.equal(_ones_conv("tf")(x), torch.tensor([[[[45.0, 39.0], [66.0, 50.0]]]]))
        # symmetric padding 1: windows {-1,0,1} and {1,2,3}:
        #   0+1+4+5 = 10 | 1+2+3+5+6+7 = 24 | 4+5+8+9+12+13 = 51 | 5+6+7+9+10+11+13+14+15 = 90
        assert torch.equal(_ones_conv("symmetric")(x), torch.tensor([[[[10.0, 24.0], [51.0, 90.0]]]]))
        # odd input 3x3: TF pads (1, 1) -> output 2x2 with windows {-1,0,1} and {1,2,3}, as symmetric padding
        x3 = torch.arange(9.0).view(1, 1, 3, 3)
        assert torch.equal(_ones_conv("tf")(x3), _ones_conv("symmetric")(x3))
        assert torch.equal(_ones_conv("tf")(x3), torch.tensor([[[[8.0, 12.0], [20.0, 24.0]]]]))


def test_vgg32_dropout_kinds() -> None:
    elem = VGG32(in_channels=3, dropout=0.5, dropout_kind="element")
    chan = VGG32(in_channels=3, dropout=0.5, dropout_kind="channel")
    drops_e = [m for m in elem.modules() if isinstance(m, nn.Dropout)]
    drops_c = [m for m in chan.modules() if isinstance(m, nn.Dropout2d)]
    assert len(drops_e) == 3 and len(drops_c) == 3
    assert all(m.p == 0.5 for m in drops_e + drops_c)
    torch.manual_seed(0)
    x = torch.ones(1, 64, 8, 8)
    e, c = drops_e[0].train()(x), drops_c[0].train()(x)
    # channel-wise: each channel is all 0 or all 2; element-wise: channels mix zeros and twos
    assert all(len(ch.unique()) == 1 for ch in c[0])
    assert any(len(ch.unique()) == 2 for ch in e[0])
    assert set(e.unique().tolist()) == {0.0, 2.0}
    with pytest.raises(ValueError):
        VGG32(dropout_kind="spatial")
    with pytest.raises(ValueError):
        VGG32(padding="same")


def test_vgg32_init_and_bn_settings() -> None:
    net = VGG32(in_channels=3, bn_momentum=0.01, bn_eps=1e-3)
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 9 and all(m.momentum == 0.01 and m.eps == 1e-3 for m in bns)
    w = torch.cat([m.weight.flatten() for m in net.modules() if isinstance(m, nn.Conv2d)])
    assert abs(w.std().item() - 0.05) < 0.002 and abs(w.mean().item()) < 0.002  # N(0, 0.05)


# --------------------------------------------------------------------------------------------- heads


def test_difair_head() -> None:
    head = DifairHead(16, num_classes=3, features_per_class=4)
    assert head.weight.shape == (12, 16, 3, 3) and head.conv.bias is None
    x = torch.randn(5, 16, 4, 4, generator=torch.Generator().manual_seed(0))  # negative inputs too
    z = head(x)
    assert z.shape == (5, 12)
    assert (z >= 0).all()
    maps = head.feature_maps(x)
    assert maps.shape == (5, 12, 4, 4) and (maps >= 0).all()
    assert torch.allclose(z, maps.mean(dim=(2, 3)))
    assert torch.allclose(maps, torch.relu(nn.functional.conv2d(x, head.weight, padding=1)))
    # xavier (glorot) uniform: limit sqrt(6 / (fan_in + fan_out)) = sqrt(6 / (16*9 + 12*9))
    limit = (6 / (16 * 9 + 12 * 9)) ** 0.5
    assert head.weight.abs().max() <= limit
    with pytest.raises(ValueError):
        DifairHead(16, 3, 0)


def test_linear_and_cac_heads() -> None:
    x = torch.randn(4, 8, 2, 2)
    lin = LinearHead(8, 5)
    assert lin(x).shape == (4, 5) and lin.fc.bias is None
    assert torch.allclose(lin(x), lin(x.mean(dim=(2, 3))))  # pooled maps == pooled vector
    cac = CACHead(8, 3, alpha=10.0)
    logits = cac(x)
    assert logits.shape == (4, 3)
    assert torch.equal(cac.anchors, 10 * torch.eye(3))
    assert "anchors" in dict(cac.named_buffers()) and _trainable(cac) == 24
    on_anchor = torch.tensor([[10.0, 0.0, 0.0]])
    assert cac.distances(on_anchor)[0].tolist() == pytest.approx([0.0, 200**0.5, 200**0.5])


# --------------------------------------------------------------------------------------------- loss modules


def test_difair_loss_module_total() -> None:
    g = torch.Generator().manual_seed(0)
    z = torch.rand(6, 30, generator=g) * 12
    y = torch.tensor([0, 1, 2, 3, 4, 5])
    w = torch.randn(30, 8, 3, 3, generator=g)
    loss = DifairLoss(6, corr_weight=0.5)
    assert loss.radius == pytest.approx(18.97366596, abs=1e-6)
    anchors = DF.class_anchors(6, 5, 10.0)
    assert torch.equal(loss.anchors, anchors)
    dist = DF.difair_loss(z, y, anchors, loss.radius)
    corr = DF.filter_correlation_penalty(w, 5, "paper")
    terms = loss.terms(z, y, w)
    assert terms["distance"].item() == pytest.approx(dist.item(), abs=1e-6)
    assert terms["correlation"].item() == pytest.approx(corr.item(), abs=1e-6)
    assert loss(z, y, w).item() == pytest.approx(dist.item() + 0.5 * corr.item(), abs=1e-5)
    # reference variant, explicit radius and hard mode are passed through
    ref = DifairLoss(6, radius=5.0, mode="hard", corr_variant="reference")
    expected = DF.difair_loss(z, y, anchors, 5.0, mode="hard") + DF.filter_correlation_penalty(
        w, 5, "reference"
    )
    assert ref(z, y, w).item() == pytest.approx(expected.item(), abs=1e-5)
    # no head weight, or lambda = 0: distance only
    assert set(loss.terms(z, y)) == {"distance", "loss"}
    assert DifairLoss(6, corr_weight=0.0)(z, y, w).item() == pytest.approx(dist.item(), abs=1e-6)
    with pytest.raises(ValueError):
        DifairLoss(6, radius=-1.0)


def test_cac_loss_module() -> None:
    logits = torch.tensor([[10.0, 0.0, 0.0], [1.0, 2.0, 3.0]])
    y = torch.tensor([0, 2])
    anchors = DF.class_anchors(3, 1, 10.0)
    assert CACLoss(3)(logits, y).item() == pytest.approx(DF.cac_loss(logits, y, anchors).item(), abs=1e-6)
    inc = CACLoss(3, lambda_=1.0, tuplet_includes_target=True)(logits, y)
    assert inc.item() == pytest.approx(
        DF.cac_loss(logits, y, anchors, 1.0, tuplet_includes_target=True).item(), abs=1e-6
    )


# --------------------------------------------------------------------------------------------- tiny fit


def test_difair_learns_toy_problem() -> None:
    # 3 classes of (nearly) constant 8x8 grey images at levels 0, 0.5, 1. N=2, alpha=5:
    # r = 0.6*sqrt(2*2*25) = 6 < anchor norm 5*sqrt(2) = 7.07, so the near-zero initial representations start
    # outside every sphere.
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    n_c, n, alpha = 3, 2, 5.0
    y = torch.arange(n_c).repeat_interleave(8)
    x = (y.float() / 2).view(-1, 1, 1, 1).expand(-1, 1, 8, 8) + 0.05 * torch.randn(
        len(y), 1, 8, 8, generator=g
    )
    body = VGG32(in_channels=1, dropout=0.0, width=0.125)
    head = DifairHead(body.out_channels, n_c, n)
    model = nn.Sequential(body, head)
    loss_fn = DifairLoss(n_c, n, alpha)
    assert loss_fn.radius == pytest.approx(6.0)
    anchors = loss_fn.anchors

    def own_distance() -> torch.Tensor:
        with torch.no_grad():  # train mode (batch statistics, as in the steps), dropout is 0
            return DF.anchor_distances(model(x), anchors).gather(1, y[:, None]).squeeze(1)

    assert (own_distance() > loss_fn.radius).all()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    first = None
    for _ in range(40):
        opt.zero_grad()
        loss = loss_fn(model(x), y, head.weight)
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
    assert loss.item() < 0.5 * first
    assert (own_distance() < loss_fn.radius).all()
    with torch.no_grad():
        assert torch.equal(S.nearest_anchor(model(x), anchors), y)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"features_per_class": 0}, "features_per_class must be >= 1, got 0"),  # not "radius must be > 0"
        ({"mode": "bogus"}, "mode must be one of"),
        ({"corr_variant": "bogus"}, "corr_variant must be one of"),
        ({"inner_weight": -1.0}, "must be >= 0"),
    ],
)
def test_difair_loss_refuses_bad_options_when_built(kwargs, fragment) -> None:
    from difair.nn import DifairLoss

    with pytest.raises(ValueError, match=fragment):
        DifairLoss(6, **kwargs)


def test_a_registered_backbone_gets_the_options_it_declares(monkeypatch) -> None:
    # the options each backbone takes were a branch on names in engine.build: a new scratch backbone got none of
    # model.width / dropout / dropout_backend, without a word
    from difair.config import TrainConfig, apply_overrides
    from difair.engine.build import build_model
    from difair.errors import DifairError
    from difair.nn import backbones as B

    seen = {}

    def tiny(in_channels: int = 1, **kwargs) -> torch.nn.Module:
        seen.update(kwargs)
        net = torch.nn.Conv2d(in_channels, 4, 3, padding=1)
        net.out_channels = 4
        return net

    monkeypatch.setitem(B._REGISTRY, "tiny", B.BackboneEntry(tiny, reads=("width", "dropout")))
    over = ["model.backbone=tiny", "model.width=0.5", "model.dropout=0.3"]
    cfg = TrainConfig.from_dict(apply_overrides(TrainConfig().to_dict(), over))
    build_model(cfg, 3, 1, [0.5], [0.5])
    assert seen == {"width": 0.5, "dropout": 0.3}
    assert cfg.fidelity()["padding"] == "n/a (tiny)"  # VGG32's option: not read here
    assert B.has_pretrained_weights("resnet18") and not B.has_pretrained_weights("tiny")
    assert B.pretrained_backbones() == "efficientnet_lite0, resnet18 or timm:NAME"
    with pytest.raises(DifairError, match="backbone tiny has no pretrained weights: choose model.backbone="):
        TrainConfig.from_dict(
            apply_overrides(TrainConfig().to_dict(), [*over, "model.pretrained=true"])
        ).validate()
    assert B.backbone_reads("vgg32") == (*B.SCRATCH_OPTIONS, *B.VGG32_ONLY)


def test_losses_and_scores_keep_float64_and_widen_half_precision() -> None:
    # they once cast everything to float32: a float64 caller lost its precision (a 1e-10 loss came out 0.0)
    z = torch.rand(4, 30, dtype=torch.float64) * 10
    y = torch.tensor([0, 1, 2, 3])
    loss = DifairLoss(num_classes=6).double()
    assert loss(z, y).dtype == torch.float64
    assert loss(z, y) == DF.difair_loss(z, y, DF.class_anchors(6, 5, 10.0, dtype=torch.float64), loss.radius)
    logits = torch.randn(4, 6, dtype=torch.float64)
    assert (
        CACLoss(6)(logits, y).dtype == torch.float64
        and CACHead(8, 6).distances(logits).dtype == torch.float64
    )
    anchors = DF.class_anchors(6, 5, 10.0)
    for score in (S.difair_min_distance(z, anchors), S.msp(logits), S.mls(logits), S.max_activation(z)):
        assert score.dtype == torch.float64
    assert (
        S.mls(logits.bfloat16()).dtype == torch.float32 and loss.float()(z.half(), y).dtype == torch.float32
    )


def test_a_registration_never_replaces_another_silently(monkeypatch) -> None:
    from difair.config import ModelConfig
    from difair.errors import DifairError
    from difair.methods import METHODS
    from difair.methods.base import register_method
    from difair.methods.ce import CEMethod
    from difair.nn import backbones as B

    monkeypatch.setattr(B, "_REGISTRY", dict(B._REGISTRY))
    with pytest.raises(
        ValueError, match=r"backbone 'vgg32' is registered already \(difair.nn.backbones._vgg32\)"
    ):
        B.register_backbone("vgg32")(
            lambda in_channels=3: None
        )  # every vgg32 run of the process would change
    B.register_backbone("small_cnn8", reads=B.SCRATCH_OPTIONS)(B._REGISTRY["small_cnn8"].build)  # a reload
    B.register_backbone("typo", reads=("widht",))(lambda in_channels=3, **k: None)
    with pytest.raises(DifairError, match="backbone typo reads model.widht, which is no option of model"):
        ModelConfig(backbone="typo").validate()
    monkeypatch.setattr("difair.methods.base.METHODS", dict(METHODS))

    class Other(CEMethod):
        name = "ce"

    with pytest.raises(ValueError, match=r"method 'ce' is registered already \(difair.methods.ce.CEMethod\)"):
        register_method(Other)


def test_a_head_built_for_other_classes_is_named_by_the_loss() -> None:
    head, loss = DifairHead(8, num_classes=6), DifairLoss(num_classes=5)
    z = head(torch.rand(2, 8, 4, 4))[:, :25]
    with pytest.raises(
        ValueError, match=r"the head has 30 filters, the loss's anchors 25 dims \(5 classes x 5\)"
    ):
        loss(z, torch.tensor([0, 1]), head.weight)
    with pytest.raises(ValueError, match="default_radius needs features_per_class >= 1, alpha > 0"):
        DF.default_radius(0, 10.0)
