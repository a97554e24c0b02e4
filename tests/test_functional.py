"""Known-answer tests of the functional core: anchors, distances, DIFAIR/CAC losses, the correlation penalty.

Expected values are worked out by hand in the comments (paper Eq. 1, sections 3.2-3.3; reference notes 2-3).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from difair.nn import functional as DF

# Rows of an 8x8 Hadamard matrix without the all-ones row: 7 vectors with mean 0, pairwise orthogonal, so
# their pairwise Pearson correlations are exactly 0.
_H = torch.tensor(
    [
        [1, -1, 1, -1, 1, -1, 1, -1],
        [1, 1, -1, -1, 1, 1, -1, -1],
        [1, -1, -1, 1, 1, -1, -1, 1],
        [1, 1, 1, 1, -1, -1, -1, -1],
        [1, -1, 1, -1, -1, 1, -1, 1],
        [1, 1, -1, -1, -1, -1, 1, 1],
        [1, -1, -1, 1, -1, 1, 1, -1],
    ],
    dtype=torch.float64,
)


def _conv_weight(filters: list[torch.Tensor]) -> torch.Tensor:
    """Stack flat 8-vectors as a conv weight [out, 2, 2, 2] (flattening gives the vectors back)."""
    return torch.stack(filters).reshape(len(filters), 2, 2, 2)


# --------------------------------------------------------------------------------------------- anchors


def test_class_anchors_paper_eq1() -> None:
    # Eq. 1: three classes, N=2: A1=(a,a,0,0,0,0), A2=(0,0,a,a,0,0), A3=(0,0,0,0,a,a).
    expected = torch.tensor(
        [[10.0, 10, 0, 0, 0, 0], [0, 0, 10, 10, 0, 0], [0, 0, 0, 0, 10, 10]],
    )
    assert torch.equal(DF.class_anchors(3, 2, 10.0), expected)


def test_class_anchors_dtype_and_single_feature() -> None:
    a = DF.class_anchors(2, 1, 4.0, dtype=torch.float64)
    assert a.dtype == torch.float64
    assert torch.equal(a, torch.tensor([[4.0, 0.0], [0.0, 4.0]], dtype=torch.float64))


@pytest.mark.parametrize(
    ("n_c", "n", "alpha"),
    [(3, 0, 10.0), (3, -1, 10.0), (0, 2, 10.0), (3, 2, 0.0), (3, 2, -1.0), (3, 2, math.nan)],
)
def test_class_anchors_rejects_bad_arguments(n_c: int, n: int, alpha: float) -> None:
    with pytest.raises(ValueError):
        DF.class_anchors(n_c, n, alpha)


def test_default_radius_paper_value() -> None:
    # 0.6 * sqrt(2 * 5 * 10^2) = 0.6 * sqrt(1000) = 0.6 * 31.6227766 = 18.97366596
    assert DF.default_radius(5, 10.0) == pytest.approx(18.97366596, abs=1e-7)
    assert DF.default_radius(5, 10.0, ratio=0.4) == pytest.approx(12.6491106, abs=1e-6)  # the older setting
    assert DF.default_radius(2, 3.0, ratio=1.0) == pytest.approx(6.0)  # sqrt(2*2*9)


def test_anchor_geometry() -> None:
    # inter-anchor distance sqrt(2N)*alpha = sqrt(10)*10 = 31.6228; anchor norm alpha*sqrt(N) = 22.3607
    a = DF.class_anchors(4, 5, 10.0, dtype=torch.float64)
    d = DF.anchor_distances(a, a)
    off = ~torch.eye(4, dtype=torch.bool)
    assert torch.allclose(d[off], torch.full((12,), 31.6227766017, dtype=torch.float64))
    assert torch.all(d.diagonal() == 0)
    assert torch.allclose(a.norm(dim=1), torch.full((4,), 22.360679775, dtype=torch.float64))
    # the all-zero representation lies outside every hypersphere (22.36 > 18.97);
    # neighbouring spheres overlap (r > 31.62 / 2 = 15.81)
    r = DF.default_radius(5, 10.0)
    assert 31.6227766 / 2 < r < 22.360679


# --------------------------------------------------------------------------------------------- distances


def test_anchor_distances_hand_values() -> None:
    anchors = torch.tensor([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]])
    z = torch.tensor([[0.0, 0.0], [3.0, 0.0]])
    # z0: 0, 5, 10 (3-4-5 and 6-8-10); z1: 3, 4, sqrt(9 + 64) = sqrt(73) = 8.5440037
    expected = torch.tensor([[0.0, 5.0, 10.0], [3.0, 4.0, 8.5440037]])
    assert torch.allclose(DF.anchor_distances(z, anchors), expected, atol=1e-6)


def test_anchor_distances_match_cdist() -> None:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(7, 12, generator=g, dtype=torch.float64) * 5
    a = DF.class_anchors(4, 3, 10.0, dtype=torch.float64)
    assert torch.allclose(DF.anchor_distances(z, a), torch.cdist(z, a), atol=1e-10)


def test_anchor_distances_not_squared_and_shape_checks() -> None:
    d = DF.anchor_distances(torch.tensor([[6.0, 8.0]]), torch.tensor([[0.0, 0.0]]))
    assert d.item() == pytest.approx(10.0)  # not 100
    with pytest.raises(ValueError):
        DF.anchor_distances(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError):
        DF.anchor_distances(torch.zeros(3), torch.zeros(2, 3))


def test_anchor_distances_gradient_finite_at_anchor() -> None:
    anchors = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    z = torch.tensor([[3.0, 4.0]], requires_grad=True)  # exactly on anchor 1
    d = DF.anchor_distances(z, anchors)
    d.sum().backward()
    # d/dz ||z - a0|| = (z - a0)/5 = (0.6, 0.8); the zero distance contributes a zero (not NaN) gradient
    assert torch.isfinite(z.grad).all()
    assert torch.allclose(z.grad, torch.tensor([[0.6, 0.8]]))


# --------------------------------------------------------------------------------------------- DIFAIR loss

# N=1, two classes, alpha=10: a0 = (10, 0), a1 = (0, 10); radius 5.
_A2 = torch.tensor([[10.0, 0.0], [0.0, 10.0]])
# z0 -> class 0 at d = 3 (inside); z1 -> class 1 at d = ||(6, 8)|| = 10 (outside);
# z2 exactly on anchor 0 (d = 0).
_Z = torch.tensor([[10.0, 3.0], [6.0, 18.0], [10.0, 0.0]])
_Y = torch.tensor([0, 1, 0])


def test_difair_loss_smooth_hand_values() -> None:
    # smooth: 0.1 d + max(d - r, 0): 0.3 + 0 | 1.0 + 5 = 6.0 | 0
    per = DF.difair_loss(_Z, _Y, _A2, radius=5.0, reduction="none")
    assert torch.allclose(per, torch.tensor([0.3, 6.0, 0.0]))
    assert DF.difair_loss(_Z, _Y, _A2, radius=5.0).item() == pytest.approx(2.1)  # mean = 6.3 / 3
    assert DF.difair_loss(_Z, _Y, _A2, radius=5.0, reduction="sum").item() == pytest.approx(6.3)


def test_difair_loss_hard_hand_values() -> None:
    # hard: max(d - r, 0): 0 | 5 | 0
    per = DF.difair_loss(_Z, _Y, _A2, radius=5.0, mode="hard", reduction="none")
    assert torch.allclose(per, torch.tensor([0.0, 5.0, 0.0]))
    assert DF.difair_loss(_Z, _Y, _A2, radius=5.0, mode="hard").item() == pytest.approx(5.0 / 3)


def test_difair_loss_inner_weight() -> None:
    per = DF.difair_loss(_Z, _Y, _A2, radius=5.0, inner_weight=0.5, reduction="none")
    assert torch.allclose(per, torch.tensor([1.5, 10.0, 0.0]))  # 0.5*3 | 0.5*10 + 5 | 0


def test_difair_loss_uses_target_anchor_not_nearest() -> None:
    # (10, 3) has target 1: d = ||(10, -7)|| = sqrt(149) = 12.2066, outside r=5: 1.22066 + 7.2066 = 8.4272
    per = DF.difair_loss(_Z[:1], torch.tensor([1]), _A2, radius=5.0, reduction="none")
    assert per.item() == pytest.approx(0.1 * math.sqrt(149) + math.sqrt(149) - 5, abs=1e-5)


@pytest.mark.parametrize(("mode", "inside", "outside"), [("smooth", 0.1, 1.1), ("hard", 0.0, 1.0)])
def test_difair_loss_gradient_magnitude(mode: str, inside: float, outside: float) -> None:
    # |dL/dz| = |dL/dd| * |dd/dz| = |dL/dd| since dd/dz = (z - a)/d is a unit vector.
    z = _Z[:2].clone().requires_grad_(True)
    DF.difair_loss(z, _Y[:2], _A2, radius=5.0, mode=mode, reduction="sum").backward()
    norms = z.grad.norm(dim=1)
    assert norms[0].item() == pytest.approx(inside, abs=1e-6)
    assert norms[1].item() == pytest.approx(outside, abs=1e-6)
    # direction: pushes z towards its anchor (gradient along z - a)
    assert torch.allclose(z.grad[1], outside * torch.tensor([0.6, 0.8]), atol=1e-6)


def test_difair_loss_gradient_finite_on_anchor() -> None:
    z = _Z[2:].clone().requires_grad_(True)
    DF.difair_loss(z, _Y[2:], _A2, radius=5.0).backward()
    assert torch.isfinite(z.grad).all()


@pytest.mark.parametrize("bad", [-1, 2, 7])
def test_difair_loss_rejects_bad_targets(bad: int) -> None:
    with pytest.raises(ValueError):
        DF.difair_loss(_Z[:1], torch.tensor([bad]), _A2, radius=5.0)


def test_difair_loss_rejects_bad_options() -> None:
    with pytest.raises(ValueError):
        DF.difair_loss(_Z, _Y, _A2, radius=0.0)
    with pytest.raises(ValueError):
        DF.difair_loss(_Z, _Y, _A2, radius=5.0, mode="soft")
    with pytest.raises(ValueError):
        DF.difair_loss(_Z, _Y, _A2, radius=5.0, reduction="max")


# ------------------------------------------------------------------------------------- correlation penalty


def _hand_class() -> list[torch.Tensor]:
    """Five filters: f0 = f1 (corr 1), f2 = 2 - 3 f0 (corr -1 with f0 and f1), f3, f4 orthogonal (corr 0).

    Pairs: (0,1)=1, (0,2)=-1, (1,2)=-1, the other 7 are 0: sum |corr| over the 10 pairs = 3.
    """
    return [_H[0], _H[0].clone(), 2 - 3 * _H[0], 4 * _H[1] + 1, _H[2]]


def test_correlation_penalty_hand_built_paper_and_reference() -> None:
    # class 0: the hand class (sum |corr| = 3); class 1: five mutually orthogonal filters (sum 0).
    w = _conv_weight(_hand_class() + [_H[3], _H[4], _H[5], _H[6], 0.5 * _H[1]])
    # paper: per class 3/10 = 0.3 and 0; mean over the classes = 0.15
    assert DF.filter_correlation_penalty(w, 5, "paper").item() == pytest.approx(0.15, abs=1e-6)
    # reference: per class 3/25 = 0.12 and 0; summed over the classes = 0.12
    assert DF.filter_correlation_penalty(w, 5, "reference").item() == pytest.approx(0.12, abs=1e-6)


def test_correlation_penalty_absolute_value() -> None:
    # one pair with corr -1 (N=2): |corr| = 1, not -1 (which the paper formula without abs would reward)
    w = _conv_weight([_H[0], -_H[0]])
    assert DF.filter_correlation_penalty(w, 2, "paper").item() == pytest.approx(1.0)
    assert DF.filter_correlation_penalty(w, 2, "reference").item() == pytest.approx(0.25)  # 1/N^2 = 1/4


def test_correlation_penalty_identical_class_ratio_and_class_sum() -> None:
    # all 5 filters of both classes identical within the class: every |corr| is 1.
    w = _conv_weight([_H[0]] * 5 + [3 * _H[1] - 1] * 5)
    # paper: 10/10 per class, mean over 2 classes = 1
    assert DF.filter_correlation_penalty(w, 5, "paper").item() == pytest.approx(1.0, abs=1e-6)
    # reference: 10/25 = 0.4 per class (ratio 0.4 at N=5), summed over 2 classes = 0.8
    assert DF.filter_correlation_penalty(w, 5, "reference").item() == pytest.approx(0.8, abs=1e-6)
    one_class = _conv_weight([_H[0]] * 5)
    assert DF.filter_correlation_penalty(one_class, 5, "reference").item() == pytest.approx(0.4, abs=1e-6)


def test_correlation_penalty_ignores_cross_class_correlation() -> None:
    # both classes hold the same five orthogonal filters: five cross-class pairs have corr 1, but no
    # within-class pair is correlated, so the penalty is 0.
    filters = [_H[0], _H[1], _H[2], _H[3], _H[4]]
    w = _conv_weight(filters + [2 * f + 1 for f in filters])
    assert DF.filter_correlation_penalty(w, 5, "paper").item() == pytest.approx(0.0, abs=1e-7)
    assert DF.filter_correlation_penalty(w, 5, "reference").item() == pytest.approx(0.0, abs=1e-7)
    # the same ten filters grouped as identical pairs (N=2) are fully penalised
    paired = _conv_weight([v for f in filters for v in (f, 2 * f + 1)])
    assert DF.filter_correlation_penalty(paired, 2, "paper").item() == pytest.approx(1.0, abs=1e-6)


def test_correlation_penalty_matches_numpy_corrcoef() -> None:
    g = torch.Generator().manual_seed(1)
    n_c, n = 4, 5
    w = torch.randn(n_c * n, 16, 3, 3, generator=g, dtype=torch.float64)
    w[3] += 0.8 * w[1]  # some real correlation
    flat = w.reshape(n_c * n, -1).numpy()
    iu = np.triu_indices(n, k=1)
    sums = np.array([np.abs(np.corrcoef(flat[c * n : (c + 1) * n])[iu]).sum() for c in range(n_c)])
    paper = np.mean(sums / (n * (n - 1) / 2))
    reference = np.sum(sums / n**2)
    assert DF.filter_correlation_penalty(w, n, "paper").item() == pytest.approx(paper, abs=1e-10)
    assert DF.filter_correlation_penalty(w, n, "reference").item() == pytest.approx(reference, abs=1e-10)
    w32 = w.float()
    assert DF.filter_correlation_penalty(w32, n, "paper").item() == pytest.approx(paper, abs=1e-5)


def test_correlation_penalty_single_feature_is_zero() -> None:
    w = torch.randn(6, 4, 3, 3)
    for variant in ("paper", "reference"):
        assert DF.filter_correlation_penalty(w, 1, variant).item() == 0.0


def test_correlation_penalty_constant_filter_no_nan() -> None:
    # f0 constant (std 0 -> corr 0 with everything, as the authors' std==0 -> 1 rule gives); f1 = f2 (corr 1);
    # sum |corr| = 1 over 10 pairs -> paper 0.1, reference 1/25 = 0.04
    for const in (0.0, 0.5):
        w = _conv_weight([torch.full((8,), const, dtype=torch.float64), _H[0], _H[0], _H[1], _H[2]])
        w.requires_grad_(True)
        p = DF.filter_correlation_penalty(w, 5, "paper")
        assert p.item() == pytest.approx(0.1, abs=1e-7)
        p.backward()
        assert torch.isfinite(w.grad).all(), "a constant (e.g. all-zero) filter must not give NaN gradients"
        assert DF.filter_correlation_penalty(w.detach(), 5, "reference").item() == pytest.approx(
            0.04, abs=1e-7
        )


def test_correlation_penalty_gradient_decorrelates() -> None:
    g = torch.Generator().manual_seed(2)
    base = torch.randn(1, 32, 3, 3, generator=g)
    w = (base.repeat(5, 1, 1, 1) + 0.3 * torch.randn(5, 32, 3, 3, generator=g)).requires_grad_(True)
    # the gradient of a correlation scales as 1/(std * numel) ~ 1/288 per weight here, hence the large lr
    opt = torch.optim.SGD([w], lr=100.0)
    start = DF.filter_correlation_penalty(w, 5).item()
    for _ in range(20):
        opt.zero_grad()
        p = DF.filter_correlation_penalty(w, 5)
        p.backward()
        assert torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0
        opt.step()
    assert start > 0.8
    assert DF.filter_correlation_penalty(w, 5).item() < 0.2 * start


def test_correlation_penalty_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        DF.filter_correlation_penalty(torch.randn(7, 2, 3, 3), 5)  # 7 filters, N=5
    with pytest.raises(ValueError):
        DF.filter_correlation_penalty(torch.randn(10, 2, 3, 3), 5, "mean")


# --------------------------------------------------------------------------------------------- CAC

# Three anchors in 2D and z at the origin: d = (0, ||(6, 8)|| = 10, 3).
_CAC_A = torch.tensor([[0.0, 0.0], [6.0, 8.0], [0.0, 3.0]])
_CAC_Z = torch.zeros(2, 2)
_CAC_Y = torch.tensor([0, 2])


def test_cac_loss_hand_values() -> None:
    # y=0: 0.1*0 + log(1 + e^(0-10) + e^(0-3)) = log(1.0498325) = 0.0486303
    # y=2: 0.1*3 + log(1 + e^(3-0) + e^(3-10)) = 0.3 + log(21.0864456) = 0.3 + 3.0486303 = 3.3486303
    expected = torch.tensor([0.0486303, 3.3486303])
    per = DF.cac_loss(_CAC_Z, _CAC_Y, _CAC_A, reduction="none")
    assert torch.allclose(per, expected, atol=1e-6)
    formula = [
        math.log(1 + math.exp(-10) + math.exp(-3)),
        0.3 + math.log(1 + math.exp(3) + math.exp(-7)),
    ]
    assert per.tolist() == pytest.approx(formula, abs=1e-6)
    assert DF.cac_loss(_CAC_Z, _CAC_Y, _CAC_A).item() == pytest.approx(sum(formula) / 2, abs=1e-6)
    assert DF.cac_loss(_CAC_Z, _CAC_Y, _CAC_A, reduction="sum").item() == pytest.approx(
        sum(formula), abs=1e-6
    )


def test_cac_loss_lambda_and_authors_tuplet() -> None:
    per = DF.cac_loss(_CAC_Z, _CAC_Y, _CAC_A, lambda_=1.0, reduction="none")
    assert per[1].item() == pytest.approx(3.0 + math.log(1 + math.exp(3) + math.exp(-7)), abs=1e-5)
    # authors' code keeps exp(d_y - d_y) = 1 in the sum: log(2 + ...)
    inc = DF.cac_loss(_CAC_Z, _CAC_Y, _CAC_A, tuplet_includes_target=True, reduction="none")
    assert inc.tolist() == pytest.approx(
        [math.log(2 + math.exp(-10) + math.exp(-3)), 0.3 + math.log(2 + math.exp(3) + math.exp(-7))], abs=1e-6
    )


def test_cac_loss_on_anchor_two_classes() -> None:
    # paper anchors 10*e_c; logits exactly on anchor 0: d = (0, sqrt(200)) -> log(1 + e^-14.1421) ~ 7.2e-7
    a = DF.class_anchors(2, 1, 10.0)
    z = torch.tensor([[10.0, 0.0]], requires_grad=True)
    loss = DF.cac_loss(z, torch.tensor([0]), a)
    assert loss.item() == pytest.approx(math.log1p(math.exp(-math.sqrt(200))), abs=1e-7)
    loss.backward()
    assert torch.isfinite(z.grad).all()
    with pytest.raises(ValueError):
        DF.cac_loss(z, torch.tensor([2]), a)
    with pytest.raises(ValueError):
        DF.cac_loss(z, torch.tensor([-1]), a)


def test_cac_rejection_score_sample_and_global() -> None:
    d = torch.tensor([[1.0, 2.0], [0.0, 3.0]], dtype=torch.float64)
    # per sample: softmin row0 = (1, e^-1)/(1 + e^-1) = (0.7310586, 0.2689414): gamma = (0.2689414, 1.4621172)
    #             softmin row1 = (1, e^-3)/(1 + e^-3) = (0.9525741, 0.0474259): gamma = (0, 2.8577224)
    expected = torch.tensor([[0.2689414, 1.4621172], [0.0, 2.8577224]], dtype=torch.float64)
    assert torch.allclose(DF.cac_rejection_score(d), expected, atol=1e-6)
    # global (authors' code): one softmin over all 4 entries: Z = e^-1 + e^-2 + 1 + e^-3 = 1.5530017
    z = math.exp(-1) + math.exp(-2) + 1 + math.exp(-3)
    glob = torch.tensor(
        [[1 * (1 - math.exp(-1) / z), 2 * (1 - math.exp(-2) / z)], [0.0, 3 * (1 - math.exp(-3) / z)]],
        dtype=torch.float64,
    )
    assert torch.allclose(DF.cac_rejection_score(d, normalize="global"), glob, atol=1e-9)
    assert DF.cac_rejection_score(d, normalize="global")[0, 0].item() == pytest.approx(
        0.7631172, abs=1e-6
    )  # 1 - 0.3678794/1.5530017
    with pytest.raises(ValueError):
        DF.cac_rejection_score(d, normalize="batch")


def test_cac_rejection_score_keeps_its_value_when_one_class_is_far_nearer() -> None:
    # 1 - softmin of the nearest class is the others' share: computed as 1 - softmin in float32 it became exactly 0
    # once the gap passed ~17 (a frozen Lite0's CAC run scored 43 of 48 images -0.0)
    rows = [[1.0, 21.0, 40.0], [2.0, 42.0, 43.0], [3.0, 3.0, 5.0], [0.5, 0.7, 30.0]]

    def exact(row: list[float]) -> list[float]:  # the others' mass summed directly: no cancellation
        e = [math.exp(-x) for x in row]
        return [x * sum(e[j] for j in range(len(row)) if j != i) / sum(e) for i, x in enumerate(row)]

    got = DF.cac_rejection_score(torch.tensor(rows))
    assert got.dtype == torch.float32 and bool((got[:, 0] > 0).all())
    for g, row in zip(got.tolist(), rows, strict=True):
        assert g == pytest.approx(exact(row), rel=1e-6)
    assert got[0, 0].item() == pytest.approx(1.0 * math.exp(-20), rel=1e-4)  # ~2.06e-9, not 0
    scores = -got.min(dim=1).values
    assert (
        scores[1] > scores[0] > scores[2]
    )  # saturated samples still rank: a wider gap to the next class scores higher
    assert DF.cac_rejection_score(torch.tensor([[2.0]])).item() == 0.0  # one class: softmin 1


def test_cac_rejection_global_close_to_distance_on_large_arrays() -> None:
    d = torch.rand(500, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 20 + 5
    gamma = DF.cac_rejection_score(d, normalize="global")
    assert torch.allclose(gamma, d, rtol=0.05)  # the reference notes' "gamma ~ d"
    assert not torch.allclose(DF.cac_rejection_score(d), d, rtol=0.05)


# --------------------------------------------------------------------------------------- class activations


def test_class_activations() -> None:
    z = torch.tensor([[1.0, 2, 3, 4, 5, 6]])
    assert torch.equal(DF.class_activations(z, 2), torch.tensor([[3.0, 7, 11]]))
    assert torch.equal(DF.class_activations(z, 3), torch.tensor([[6.0, 15]]))
    with pytest.raises(ValueError):
        DF.class_activations(z, 4)


def test_nan_in_z_stays_nan_in_distances_loss_and_scores() -> None:
    anchors = DF.class_anchors(3, 2, 10.0)
    z = torch.zeros(2, 6)
    z[1, 0] = float("nan")  # one bad feature
    d = DF.anchor_distances(z, anchors)
    assert torch.isnan(d[1]).all() and torch.isfinite(d[0]).all()  # not distance 0, the best score
    assert torch.isnan(DF.difair_loss(z, torch.tensor([0, 1]), anchors, radius=5.0))
    zero = torch.zeros(1, 6, requires_grad=True)  # the norm's gradient at exactly 0 is still 0, not NaN
    DF.anchor_distances(zero, torch.zeros(1, 6)).sum().backward()
    assert torch.equal(zero.grad, torch.zeros(1, 6))


@pytest.mark.parametrize(
    "target, error, fragment",
    [
        (torch.tensor([[0], [1]]), ValueError, r"shape \[2\]"),  # [B, 1] would broadcast to [B, B, D]
        (torch.tensor([0, 1, 2]), ValueError, r"shape \[2\]"),
        (torch.tensor([0, 1], dtype=torch.uint8), TypeError, "use target.long()"),  # a mask, not indices
        (torch.tensor([0.0, 1.0]), TypeError, "integer class indices"),
        ([0, 1], TypeError, "torch tensor"),
    ],
)
def test_bad_targets_are_named(target, error, fragment) -> None:
    anchors = DF.class_anchors(3, 2, 10.0)
    with pytest.raises(error, match=fragment):
        DF.difair_loss(torch.zeros(2, 6), target, anchors, radius=5.0)
    with pytest.raises(error, match=fragment):
        DF.cac_loss(torch.zeros(2, 3), target, torch.eye(3) * 10)


def test_a_head_and_loss_built_for_other_classes_are_named() -> None:
    with pytest.raises(ValueError, match="head and the loss must be built for the same classes"):
        DF.difair_loss(torch.zeros(2, 50), torch.tensor([0, 1]), DF.class_anchors(6, 5, 10.0), radius=5.0)


def test_the_radius_ratio_default_is_the_paper_s_and_has_one_owner() -> None:
    from difair.methods.difair import DifairConfig

    assert DF.RADIUS_RATIO == 0.6 and DifairConfig().radius_ratio == DF.RADIUS_RATIO
    cfg = DifairConfig(radius=-1.0, radius_ratio=0.4)
    with pytest.raises(Exception, match=r"radius_ratio \* sqrt\(2\*N\*alpha\^2\) = 12.65"):
        cfg.validate()  # the radius this run would get, not the paper's 0.6 whatever the ratio
