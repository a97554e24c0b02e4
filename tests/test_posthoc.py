"""Known-answer tests of the post-hoc detectors: hand-computed values, numpy/scipy and pytorch-ood as oracles.

pytorch-ood returns outlier scores (higher = more OOD); difair's are higher = more likely known, so the oracle is
negated (and rescaled where pytorch-ood drops a constant factor).
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch
from scipy.special import logsumexp, softmax

from difair.errors import DifairError
from difair.eval import difair_min_distance, nearest_anchor
from difair.eval.posthoc import (
    ALL_SCORES,
    FeatureSet,
    available_detectors,
    build_detector,
    difair_feature_set,
    knn_scores,
    logit_feature_set,
    odin_logits,
    resolve_scores,
)
from difair.nn import functional as DF

ood = pytest.importorskip("pytorch_ood")
OD = ood.detector


def _fs(logits, labels=None, **features) -> FeatureSet:
    logits = torch.as_tensor(logits, dtype=torch.float32)
    labels = torch.zeros(len(logits), dtype=torch.long) if labels is None else torch.as_tensor(labels)
    return FeatureSet(
        logits=logits, labels=labels, features={k: torch.as_tensor(v).float() for k, v in features.items()}
    )


def _score(spec: str, test: FeatureSet, train: FeatureSet | None = None, **kw) -> np.ndarray:
    det = build_detector(spec, **kw).fit(train if train is not None else test)
    return det.score(test).double().numpy()


# ---------------------------------------------------------------- output scores


def test_output_scores_hand_computed() -> None:
    """logits (0, ln 3): p = (1/4, 3/4)."""
    s = {
        name: _score(name, _fs([[0.0, math.log(3.0)]]))[0]
        for name in ["msp", "mls", "energy", "entropy", "gen"]
    }
    assert s["msp"] == pytest.approx(0.75, abs=1e-6)
    assert s["mls"] == pytest.approx(math.log(3.0), abs=1e-6)
    assert s["energy"] == pytest.approx(math.log(4.0), abs=1e-6)
    assert s["entropy"] == pytest.approx(0.25 * math.log(0.25) + 0.75 * math.log(0.75), abs=1e-6)
    g = 2 * (0.25 * 0.75) ** 0.1
    assert s["gen"] == pytest.approx(-g, abs=1e-6)
    assert _score("gen", _fs([[0.0, math.log(3.0)]]), gamma=1.0)[0] == pytest.approx(
        -2 * 0.25 * 0.75, abs=1e-6
    )


def test_output_scores_against_pytorch_ood_and_scipy() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 7, generator=g) * 2
    assert logits.softmax(1).min() > 1e-7  # pytorch-ood clips p at 1e-7 for entropy and GEN; difair does not
    fs = _fs(logits)
    ref = {
        "msp": -OD.MaxSoftmax.score(logits),
        "mls": -OD.MaxLogit.score(logits),
        "energy": -OD.EnergyBased.score(logits),
        "entropy": -OD.Entropy.score(logits),
        "gen": -7 * OD.GEN.score(logits, gamma=0.1),  # pytorch-ood averages over classes; the paper sums
    }
    for name, r in ref.items():
        np.testing.assert_allclose(_score(name, fs), r.double().numpy(), rtol=1e-4, atol=1e-5, err_msg=name)
    x = logits.double().numpy()
    p = softmax(x, axis=1)
    np.testing.assert_allclose(_score("energy", fs), logsumexp(x, axis=1), rtol=1e-6)
    np.testing.assert_allclose(_score("entropy", fs), (p * np.log(p)).sum(1), rtol=1e-5)
    top3 = np.sort(p, axis=1)[:, -3:]
    np.testing.assert_allclose(_score("gen", fs, top_m=3), -(top3**0.1 * (1 - top3) ** 0.1).sum(1), rtol=1e-6)


def test_output_scores_ties_and_sign() -> None:
    """Equal logits give the uniform values; permuted logits tie; a confident row beats a uniform one."""
    fs = _fs([[1.0, 1.0, 1.0, 1.0], [5.0, 0.0, 0.0, 0.0], [0.0, 0.0, 5.0, 0.0]])
    s = {name: _score(name, fs) for name in ["msp", "mls", "energy", "entropy", "gen"]}
    assert s["msp"][0] == pytest.approx(0.25)
    assert s["energy"][0] == pytest.approx(1 + math.log(4), abs=1e-6)
    assert s["entropy"][0] == pytest.approx(-math.log(4), abs=1e-6)
    for name, v in s.items():
        assert v[1] == pytest.approx(v[2], abs=1e-6), name
        assert v[1] > v[0], name


def test_difair_logit_standin_is_the_papers_score() -> None:
    """MaxLogit on minus the anchor distances is min_distance; argmax is the nearest anchor."""
    anchors = DF.class_anchors(3, 2, 10.0)
    z = torch.rand(20, 6, generator=torch.Generator().manual_seed(1)) * 10
    fs = difair_feature_set(z, torch.zeros(20, dtype=torch.long), anchors, 2)
    torch.testing.assert_close(build_detector("mls").score(fs), difair_min_distance(z, anchors))
    assert torch.equal(fs.predictions, nearest_anchor(z, anchors))
    torch.testing.assert_close(fs.features["class_activation"], z.reshape(20, 3, 2).sum(-1))
    act = build_detector("mls:class_activation").score(fs)
    torch.testing.assert_close(act, z.reshape(20, 3, 2).sum(-1).max(1).values)


# ---------------------------------------------------------------- features


def test_knn_hand_computed_with_duplicates() -> None:
    """Bank (e1, e1, e2); query e1: the 1st and 2nd neighbours are at 0 (a duplicate counts twice), the 3rd at sqrt 2."""
    bank = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0]])  # normalised: e1, e1, e2
    q = torch.tensor([[5.0, 0.0], [1.0, 1.0]])
    assert knn_scores(q, bank, 1).tolist() == pytest.approx([0.0, -math.sqrt(2 - math.sqrt(2))], abs=1e-6)
    assert knn_scores(q, bank, 2)[0] == pytest.approx(0.0, abs=1e-6)
    assert knn_scores(q, bank, 3)[0] == pytest.approx(-math.sqrt(2), abs=1e-6)
    assert knn_scores(q, bank, 3)[1] == pytest.approx(-math.sqrt(2 - math.sqrt(2)), abs=1e-6)  # tie of 3
    with pytest.raises(DifairError, match="k=4"):
        knn_scores(q, bank, 4)


def test_knn_against_pytorch_ood_and_numpy() -> None:
    g = torch.Generator().manual_seed(2)
    train, test = torch.randn(200, 16, generator=g), torch.randn(50, 16, generator=g)
    ref = OD.KNN(None, k=10).fit_features(train, torch.zeros(200, dtype=torch.long)).predict_features(test)
    ours = _score("knn", _fs(torch.zeros(50, 2), pooled=test), _fs(torch.zeros(200, 2), pooled=train), k=10)
    np.testing.assert_allclose(ours, -ref.numpy(), atol=1e-5)
    a = train.double().numpy() / np.linalg.norm(train.double().numpy(), axis=1, keepdims=True)
    b = test.double().numpy() / np.linalg.norm(test.double().numpy(), axis=1, keepdims=True)
    d = np.sqrt(((b[:, None] - a[None]) ** 2).sum(-1))
    np.testing.assert_allclose(ours, -np.sort(d, axis=1)[:, 9], atol=1e-5)
    np.testing.assert_allclose(
        knn_scores(test, train, 10, chunk_elems=700).numpy(), ours, atol=1e-6
    )  # chunks


def _two_gaussians() -> tuple[FeatureSet, FeatureSet]:
    """Class 0 around (0,0), class 1 around (10,0), each (+-1,0), (0,+-1): tied Sigma = diag(0.5, 0.5)."""
    pts = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    x = torch.cat([pts, pts + torch.tensor([10.0, 0.0])])
    y = torch.tensor([0] * 4 + [1] * 4)
    q = torch.tensor([[0.0, 0.0], [2.0, 0.0], [5.0, 0.0]])
    return _fs(torch.zeros(8, 2), y, pooled=x), _fs(torch.zeros(3, 2), pooled=q)


def test_mahalanobis_hand_computed_with_tie() -> None:
    train, test = _two_gaussians()
    # d = |x - mu|^2 / 0.5: (0,0) -> 0; (2,0) -> 8; (5,0) -> 50 to both means (a tie)
    np.testing.assert_allclose(_score("mahalanobis", test, train), [0.0, -8.0, -50.0], rtol=1e-4, atol=1e-4)


def test_rmd_hand_computed() -> None:
    """Background: mean (5,0), var_x = 25.5, var_y = 0.5; RMD = min_c d_c - d_0."""
    train, test = _two_gaussians()
    expect = [25 / 25.5, -(8 - 9 / 25.5), -(50 - 0)]
    np.testing.assert_allclose(_score("rmd", test, train), expect, rtol=1e-4, atol=1e-4)


def test_mahalanobis_and_rmd_against_numpy() -> None:
    g = torch.Generator().manual_seed(3)
    y = torch.arange(300) % 3
    x = torch.randn(300, 5, generator=g) + y[:, None] * 2.0
    q = torch.randn(40, 5, generator=g) * 3
    xn, yn, qn = x.double().numpy(), y.numpy(), q.double().numpy()
    mu = np.stack([xn[yn == c].mean(0) for c in range(3)])
    prec = np.linalg.inv(np.cov((xn - mu[yn]).T, bias=True))
    d = np.stack([np.einsum("nd,de,ne->n", qn - m, prec, qn - m) for m in mu], 1)
    prec0 = np.linalg.inv(np.cov(xn.T, bias=True))
    d0 = np.einsum("nd,de,ne->n", qn - xn.mean(0), prec0, qn - xn.mean(0))
    train, test = _fs(torch.zeros(300, 3), y, pooled=x), _fs(torch.zeros(40, 3), pooled=q)
    np.testing.assert_allclose(_score("mahalanobis", test, train), -d.min(1), rtol=1e-3)
    np.testing.assert_allclose(_score("rmd", test, train), -(d - d0[:, None]).min(1), rtol=1e-3, atol=1e-3)
    train_z, test_z = _fs(torch.zeros(300, 3), y, z=x), _fs(torch.zeros(40, 3), z=q)  # the ":z" source
    np.testing.assert_allclose(_score("mahalanobis:z", test_z, train_z), -d.min(1), rtol=1e-3)


def test_mahalanobis_needs_every_class() -> None:
    train, _ = _two_gaussians()
    train.labels = torch.tensor([0] * 4 + [2] * 4)
    with pytest.raises(DifairError, match="every class"):
        build_detector("mahalanobis").fit(train)


# ---------------------------------------------------------------- shaping, vim, odin


def _linear_sets(seed: int = 4, n: int = 120, d: int = 12, c: int = 4):
    g = torch.Generator().manual_seed(seed)
    lin = torch.nn.Linear(d, c)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(c, d, generator=g))
        lin.bias.copy_(torch.randn(c, generator=g))
    xt, xq = torch.rand(n, d, generator=g) * 3, torch.rand(30, d, generator=g) * 5
    with torch.no_grad():
        mk = lambda x, y: logit_feature_set(lin(x), y, x, head=lin, linear=(lin.weight, lin.bias))
        return mk(xt, torch.arange(n) % c), mk(xq, torch.full((30,), -1)), lin


def test_react_against_numpy() -> None:
    train, test, lin = _linear_sets()
    w, b = lin.weight.detach().double().numpy(), lin.bias.detach().double().numpy()
    t = np.percentile(train.features["pooled"].numpy(), 90)
    logits = np.minimum(test.features["pooled"].double().numpy(), t) @ w.T + b
    det = build_detector("react").fit(train)
    assert det.threshold == pytest.approx(t, rel=1e-6)
    np.testing.assert_allclose(det.score(test).numpy(), logsumexp(logits, axis=1), rtol=1e-5)
    msp = build_detector("react", output="msp", percentile=0.5).fit(train).score(test)
    t50 = np.percentile(train.features["pooled"].numpy(), 50)
    p = softmax(np.minimum(test.features["pooled"].double().numpy(), t50) @ w.T + b, axis=1).max(1)
    np.testing.assert_allclose(msp.numpy(), p, rtol=1e-5)


def test_ash_against_numpy() -> None:
    train, test, lin = _linear_sets()
    w, b = lin.weight.detach().double().numpy(), lin.bias.detach().double().numpy()
    x = test.features["pooled"].double().numpy()
    keep = 12 - round(12 * 0.75)
    mask = np.zeros_like(x, dtype=bool)
    np.put_along_axis(mask, np.argsort(-x, axis=1)[:, :keep], True, axis=1)
    pruned = np.where(mask, x, 0.0)
    shaped = pruned * np.exp(x.sum(1) / pruned.sum(1))[:, None]
    ours = build_detector("ash", percentile=0.75).fit(train).score(test).double().numpy()
    np.testing.assert_allclose(ours, logsumexp(shaped @ w.T + b, axis=1), rtol=1e-4)
    ash_p = build_detector("ash", percentile=0.75, variant="ash-p", output="mls").fit(train).score(test)
    np.testing.assert_allclose(ash_p.numpy(), (pruned @ w.T + b).max(1), rtol=1e-5)


def test_vim_against_numpy() -> None:
    train, test, lin = _linear_sets(n=300)
    w, b = lin.weight.detach().double().numpy(), lin.bias.detach().double().numpy()
    xt, xq = train.features["pooled"].double().numpy(), test.features["pooled"].double().numpy()
    u = -np.linalg.pinv(w) @ b
    vals, vecs = np.linalg.eigh((xt - u).T @ (xt - u) / len(xt))
    ns = vecs[:, np.argsort(vals)[: 12 - 4]]  # residual: all but the top d = 4 directions
    alpha = (xt @ w.T + b).max(1).mean() / np.linalg.norm((xt - u) @ ns, axis=1).mean()
    expect = logsumexp(xq @ w.T + b, axis=1) - alpha * np.linalg.norm((xq - u) @ ns, axis=1)
    # fp32 eigh against float64: differences of ~1e-5 of the scores' scale (AVX-512 kernels sum in another order),
    # so an absolute tolerance at 1e-4 of that scale; a wrong d, sign or alpha moves scores by O(1)
    got = build_detector("vim", d=4).fit(train).score(test).numpy()
    np.testing.assert_allclose(got, expect, rtol=1e-4, atol=1e-4 * np.abs(expect).max())
    assert build_detector("vim").fit(train).score(test).shape == (30,)  # d = D // 2 by default


def test_odin_against_the_analytic_gradient() -> None:
    """For f(x) = W x: grad_x CE(f/T, yhat) = W^T (softmax(f/T) - onehot(yhat)) / T."""
    g = torch.Generator().manual_seed(5)
    w = torch.randn(3, 6, generator=g)
    model = torch.nn.Linear(6, 3, bias=False)
    with torch.no_grad():
        model.weight.copy_(w)
    x = torch.randn(10, 6, generator=g)
    T, eps = 10.0, 0.05
    wn, xn = w.double().numpy(), x.double().numpy()
    f = xn @ wn.T
    grad = (softmax(f / T, axis=1) - np.eye(3)[f.argmax(1)]) @ wn / T
    x_hat = xn - eps * np.sign(grad)
    expect = softmax(x_hat @ wn.T / T, axis=1).max(1)
    logits = odin_logits(model, x, temperature=T, eps=eps)
    np.testing.assert_allclose(logits.double().numpy(), x_hat @ wn.T / T, rtol=1e-5)
    fs = _fs(torch.zeros(10, 3), odin=logits)
    np.testing.assert_allclose(build_detector("odin").fit(fs).score(fs).numpy(), expect, rtol=1e-5)
    ref = OD.ODIN(model, eps=eps, temperature=T).predict(x)
    np.testing.assert_allclose(build_detector("odin").score(fs).numpy(), -ref.detach().numpy(), rtol=1e-5)


# ---------------------------------------------------------------- fitting on known data only, registry


@pytest.mark.parametrize("spec", ALL_SCORES)
def test_fit_refuses_unknown_samples(spec: str) -> None:
    train, _, _ = _linear_sets()
    train.labels[3] = -1
    with pytest.raises(DifairError, match="unknown"):
        build_detector(spec).fit(train)


def test_score_before_fit_and_unavailable_sources() -> None:
    train, test, _ = _linear_sets()
    with pytest.raises(DifairError, match="fit"):
        build_detector("knn").score(test)
    dif = difair_feature_set(torch.rand(8, 6), torch.arange(8) % 3, DF.class_anchors(3, 2, 1.0), 2)
    for spec, why in [("vim", "linear head"), ("react", "head"), ("odin", "model"), ("knn", "pooled")]:
        det = build_detector(spec)
        assert why in det.unavailable(dif)
        with pytest.raises(DifairError, match=why):
            det.fit(dif).score(dif)
    assert build_detector("knn:z", k=3).fit(dif).score(dif).shape == (8,)


def test_registry_and_specs() -> None:
    assert {
        "msp",
        "mls",
        "energy",
        "entropy",
        "gen",
        "knn",
        "mahalanobis",
        "rmd",
        "react",
        "ash",
        "vim",
        "odin",
    } <= set(available_detectors())
    assert build_detector("knn:z").spec == "knn:z" and build_detector("knn").spec == "knn"
    assert resolve_scores("msp, knn:z") == ["msp", "knn:z"]
    assert resolve_scores("all") == list(ALL_SCORES)
    with pytest.raises(DifairError, match="unknown score"):
        resolve_scores("msp,nope")


def test_missing_pytorch_ood_says_how_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pytorch_ood", None)
    train, _ = _two_gaussians()
    with pytest.raises(DifairError, match=r"difair\[posthoc\]"):
        build_detector("mahalanobis").fit(train)


def test_react_and_ash_on_a_difair_head() -> None:
    """On DIFAIR the head's input is the feature map; the logit stand-in is recomputed from the shaped maps."""
    from difair.nn import DifairHead

    torch.manual_seed(6)
    head, anchors = DifairHead(4, 3, 2, 1), DF.class_anchors(3, 2, 1.0)
    g = torch.Generator().manual_seed(6)
    maps_tr, maps_te = torch.rand(30, 4, 2, 2, generator=g), torch.rand(10, 4, 2, 2, generator=g) * 2
    with torch.no_grad():
        mk = lambda m, y: difair_feature_set(head(m), y, anchors, 2, maps=m, head=head)
        train, test = mk(maps_tr, torch.arange(30) % 3), mk(maps_te, torch.full((10,), -1))
        t = np.percentile(maps_tr.numpy(), 90)
        z = torch.relu(torch.nn.functional.conv2d(maps_te.clamp(max=float(t)), head.conv.weight)).mean((2, 3))
    d = torch.cdist(z.double(), anchors.double()).numpy()
    np.testing.assert_allclose(
        build_detector("react").fit(train).score(test).numpy(), logsumexp(-d, axis=1), rtol=1e-5
    )
    flat = maps_te.reshape(10, -1).double().numpy()  # ASH-S at 90%: keep the top 2 of 16 per sample, rescale
    kept = np.where(flat >= np.sort(flat, axis=1)[:, [-2]], flat, 0.0)
    shaped = torch.tensor(kept * np.exp(flat.sum(1) / kept.sum(1))[:, None]).float().reshape(10, 4, 2, 2)
    with torch.no_grad():
        d = torch.cdist(head(shaped).double(), anchors.double()).numpy()
    np.testing.assert_allclose(
        build_detector("ash").fit(train).score(test).numpy(), logsumexp(-d, axis=1), rtol=1e-5
    )
    assert build_detector("vim").unavailable(train)  # not a linear head
