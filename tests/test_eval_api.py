"""difair.eval.evaluate: any model and data in, one metrics row per score out, every detector fitted on fit_on."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from torch import Tensor, nn
from torch.utils.data import DataLoader, Subset, TensorDataset

from difair.errors import DifairError
from difair.eval import evaluate, extract, msp
from difair.eval.overlap import shares_samples
from difair.eval.posthoc import ALL_SCORES, Detector, FeatureSet, difair_feature_set
from difair.nn import functional as DF

pytest.importorskip("pytorch_ood")


def _model_and_data(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3))
    centers = torch.randn(3, 12, generator=g) * 3
    y_tr, y_kn = torch.arange(90) % 3, torch.arange(30) % 3
    train = (centers[y_tr] + torch.randn(90, 12, generator=g), y_tr)
    known = (centers[y_kn] + torch.randn(30, 12, generator=g), y_kn)
    unknown = torch.randn(20, 12, generator=g) * 3
    return model, train, known, unknown


def test_rows_match_an_independent_computation() -> None:
    model, train, known, unknown = _model_and_data()
    table = evaluate(model, known, unknown, fit_on=train, scores=["msp", "knn"], options={"knn": {"k": 5}})
    assert [r["score"] for r in table.rows] == ["msp", "knn"]
    with torch.no_grad():
        logits = model(torch.cat([known[0], unknown]))
        pooled = torch.relu(model[1](torch.cat([known[0], unknown])))
        bank = torch.relu(model[1](train[0]))
    is_known = np.r_[np.ones(30), np.zeros(20)]
    assert table["msp"]["auroc"] == pytest.approx(roc_auc_score(is_known, msp(logits).numpy()))
    acc = (logits[:30].argmax(1) == known[1]).double().mean().item()
    assert table["msp"]["closed_set_accuracy"] == pytest.approx(acc)
    q = pooled / pooled.norm(dim=1, keepdim=True)
    b = bank / bank.norm(dim=1, keepdim=True)
    kth = torch.cdist(q.double(), b.double()).sort(dim=1).values[:, 4]
    assert table["knn"]["auroc"] == pytest.approx(roc_auc_score(is_known, -kth.numpy()))
    assert table["knn"]["fit_s"] >= 0 and table.meta == {
        **table.meta,
        "n_fit": 90,
        "n_known": 30,
        "n_unknown": 20,
    }


class _Spy(Detector):
    """Records what it is fitted on."""

    name = "spy"
    default_source = "pooled"
    needs_fit = True

    def _fit(self, train: FeatureSet) -> None:
        self.seen = train.get("pooled").clone()

    def _score(self, x: FeatureSet) -> torch.Tensor:
        return x.get("pooled").sum(1)


def test_detectors_are_fitted_on_fit_on_only() -> None:
    model, train, known, unknown = _model_and_data()
    spy = _Spy()
    evaluate(model, known, unknown, fit_on=train, scores=[spy])
    torch.testing.assert_close(spy.seen, extract(model, train).features["pooled"])
    with torch.no_grad():
        torch.testing.assert_close(spy.seen, torch.relu(model[1](train[0])))


def test_shares_samples_known_answers() -> None:
    x = torch.arange(40.0).view(10, 4)
    ds = TensorDataset(x, torch.zeros(10))
    assert (
        shares_samples(DataLoader(ds), ds)
        and shares_samples(ds, TensorDataset(x))
        and shares_samples(x[2:5], x[4:])
    )
    assert not shares_samples(x[:5], x[5:]) and not shares_samples(x, x.clone())  # disjoint rows; a copy
    assert shares_samples(Subset(ds, [0, 1, 2]), Subset(Subset(ds, [5, 2]), [1]))  # index 2 in both
    assert not shares_samples(
        Subset(ds, [0, 1]), Subset(Subset(ds, [5, 2]), [1])
    )  # the train/test parts of one set
    assert not shares_samples(Subset(ds, [0, 1]), TensorDataset(x.clone()))
    assert shares_samples(Subset(ds, [3]), ds) and shares_samples(
        Subset(ds, [3]), DataLoader(ds)
    )  # a Subset of it
    assert shares_samples(Subset(ds, [3]), x[3:4]) and not shares_samples(Subset(ds, [3]), x[4:])
    assert not shares_samples(x[::2], x[1::2]) and shares_samples(x[::2], x[2::4])  # even vs odd rows; evens


def test_test_data_cannot_be_the_fit_set() -> None:
    model, train, known, unknown = _model_and_data()
    loader = DataLoader(TensorDataset(*known), batch_size=8)
    with pytest.raises(DifairError, match="fit_on is one of the test sets"):
        evaluate(model, loader, unknown, fit_on=DataLoader(loader.dataset, batch_size=4), scores=["msp"])
    with pytest.raises(DifairError, match="fit_on is one of the test sets"):
        evaluate(model, known, unknown, fit_on=known, scores=["msp"])
    with pytest.raises(DifairError, match="fit_on is one of the test sets"):  # the dataset behind the loader
        evaluate(model, loader, unknown, fit_on=loader.dataset, scores=["msp"])
    with pytest.raises(DifairError, match="fit_on is one of the test sets"):  # a slice of the test images
        evaluate(model, known, unknown, fit_on=(known[0][:5], known[1][:5]), scores=["msp"])
    fs = extract(model, unknown, unknown=True)
    with pytest.raises(DifairError, match="unknown"):  # a fit set with unknown rows never reaches a detector
        evaluate(
            None, extract(model, known), fs, fit_on=extract(model, unknown, unknown=True), scores=["knn"]
        )


def test_loaders_datasets_and_tensors_agree() -> None:
    model, train, known, unknown = _model_and_data()
    a = evaluate(model, known, unknown, fit_on=train, scores="msp,mahalanobis")
    b = evaluate(
        model,
        DataLoader(TensorDataset(*known), batch_size=7),
        DataLoader(TensorDataset(unknown), batch_size=7),
        fit_on=TensorDataset(*train),
        scores="msp,mahalanobis",
        batch_size=16,
    )
    for name in ["msp", "mahalanobis"]:
        for m in ["auroc", "oscr", "fpr95", "aupr_in"]:
            assert a[name][m] == pytest.approx(b[name][m], abs=1e-6), (name, m)


def test_all_scores_on_a_classifier_and_skips_with_reasons() -> None:
    model, train, known, unknown = _model_and_data()
    table = evaluate(model, known, unknown, fit_on=train, scores="all")
    ran = {r["score"] for r in table.rows}
    assert {
        "msp",
        "energy",
        "gen",
        "knn",
        "knn:z",
        "mahalanobis",
        "rmd",
        "react",
        "ash",
        "vim",
        "odin",
    } <= ran
    assert set(table.skipped) == {s for s in ALL_SCORES if "class_activation" in s}
    assert all(0.0 <= r["auroc"] <= 1.0 for r in table.rows)
    assert table.best() in ran and table.best("fpr95") in ran
    md = table.to_markdown()
    assert md.count("\n") == len(table.rows) + 1 and f"**{table.best()}**" in md
    assert set(table.to_dict()) == ran


def test_feature_sets_and_extractors_without_a_model() -> None:
    """A DIFAIR-style FeatureSet: logit stand-ins and z, no linear head, so ViM is skipped."""
    g = torch.Generator().manual_seed(3)
    anchors = DF.class_anchors(3, 2, 5.0)
    mk = lambda z, y: difair_feature_set(z, y, anchors, 2)
    y = torch.arange(60) % 3
    train = mk(anchors[y] + torch.rand(60, 6, generator=g), y)
    known = mk(anchors[y[:30]] + torch.rand(30, 6, generator=g), y[:30])
    unknown = mk(torch.rand(20, 6, generator=g) * 5, torch.zeros(20, dtype=torch.long))
    table = evaluate(
        None, known, unknown, fit_on=train, scores=["mls", "msp:class_activation", "knn:z", "vim"]
    )
    assert [r["score"] for r in table.rows] == ["mls", "msp:class_activation", "knn:z"]
    assert "linear head" in table.skipped["vim"]
    via_callable = evaluate(lambda fs: fs, known, unknown, fit_on=train, scores=["mls"])
    assert via_callable["mls"]["auroc"] == table["mls"]["auroc"]
    with pytest.raises(DifairError, match="FeatureSets"):
        evaluate(None, known, torch.zeros(3, 6), fit_on=train, scores=["mls"])


def test_known_data_needs_labels() -> None:
    model, train, known, unknown = _model_and_data()
    with pytest.raises(DifairError, match="labels"):
        evaluate(model, known[0], unknown, fit_on=train, scores=["msp"])


def test_extract_leaves_the_model_as_it_was() -> None:
    model, train, _, _ = _model_and_data()
    model.train()
    fs = extract(model, train, batch_size=32, odin={"temperature": 10.0, "eps": 0.01})
    assert model.training and not model[3]._forward_hooks
    assert fs.features["pooled"].shape == (90, 8) and fs.features["odin"].shape == (90, 3)
    assert fs.linear[0].shape == (3, 8) and torch.equal(fs.head(fs.features["pooled"]), fs.logits)
    model[1].eval()  # a part the caller froze (BatchNorm statistics, dropout) stays frozen
    extract(model, train, batch_size=32)
    assert [m.training for m in model] == [True, False, True, True]
    assert not any(m._forward_hooks for m in model.modules())


class _FcDeclaredFirst(nn.Module):
    """The logits layer declared before the projection that feeds it: declaration order is not run order."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 3)
        self.proj = nn.Linear(12, 8)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(torch.relu(self.proj(x)))


class _ScaledLogits(_FcDeclaredFirst):
    def forward(self, x: Tensor) -> Tensor:
        return 2.0 * super().forward(x)  # the last layer to run does not give the output


def test_the_feature_layer_is_the_linear_that_gives_the_logits() -> None:
    _, train, _, _ = _model_and_data()
    torch.manual_seed(0)
    model = _FcDeclaredFirst()
    fs = extract(model, train, batch_size=32)
    with torch.no_grad():
        pooled = torch.relu(model.proj(train[0]))
    torch.testing.assert_close(fs.features["pooled"], pooled)  # fc's input, not proj's (the last declared)
    assert torch.equal(fs.linear[0], model.fc.weight) and torch.equal(fs.head(pooled), fs.logits)
    scaled = _ScaledLogits()
    scaled.load_state_dict(model.state_dict())
    with pytest.warns(
        UserWarning, match=r"feature layer 'fc' \(the last to run\) does not give the model's output"
    ):
        fs = extract(scaled, train, batch_size=32)
    assert (
        fs.head is None and fs.linear is None
    )  # react, ash and vim are skipped, not computed on fc's output
    torch.testing.assert_close(fs.features["pooled"], pooled)  # knn and mahalanobis still have the features
    _, _, known, unknown = _model_and_data()
    with pytest.warns(UserWarning):
        table = evaluate(scaled, known, unknown, fit_on=train, scores=["vim", "react", "knn"])
    assert set(table.skipped) == {"vim", "react"} and [r["score"] for r in table.rows] == ["knn"]


def test_a_detector_with_non_finite_scores_is_named() -> None:
    model, train, known, unknown = _model_and_data()

    class Broken(_Spy):
        def _score(self, x: FeatureSet) -> torch.Tensor:
            return torch.full((len(x),), float("nan"))

    with pytest.raises(DifairError, match="spy gave 50 non-finite"):
        evaluate(model, known, unknown, fit_on=train, scores=[Broken()])


def test_outputs_that_are_not_logits_are_refused() -> None:
    from difair.nn import DifairHead

    model, train, known, unknown = _model_and_data()
    wrong = (known[0], known[1] + 100)  # labels beyond the logits
    with pytest.raises(DifairError, match="holds label 102, but the model gives 3 outputs per sample"):
        evaluate(model, wrong, unknown, fit_on=train, scores=["msp"])
    difair_model = nn.Sequential(nn.Conv2d(3, 4, 1), DifairHead(4, 3, features_per_class=5))
    x, y = torch.rand(6, 3, 4, 4), torch.zeros(6, dtype=torch.long)
    with pytest.raises(DifairError, match="the model's output is a DIFAIR head's z"):
        evaluate(difair_model, (x[:2], y[:2]), x[2:4], fit_on=(x[4:].clone(), y[4:]))
    anchors = DF.class_anchors(3, 5, 10.0)
    as_logits = _MinusDistances(difair_model, anchors)  # a DIFAIR head inside, one logit per class outside
    table = evaluate(as_logits, (x[:2], y[:2]), x[2:4], fit_on=(x[4:].clone(), y[4:]), scores=["mls"])
    with torch.no_grad():
        z = difair_model(x[:4])
    expected = -DF.anchor_distances(z, anchors).min(dim=1).values  # mls on it is the paper's min_distance
    is_known = np.r_[1, 1, 0, 0]
    assert table["mls"]["auroc"] == pytest.approx(roc_auc_score(is_known, expected.numpy()))


class _MinusDistances(nn.Module):
    def __init__(self, net: nn.Module, anchors: Tensor) -> None:
        super().__init__()
        self.net, self.anchors = net, anchors

    def forward(self, x: Tensor) -> Tensor:
        return -DF.anchor_distances(self.net(x), self.anchors)


def test_a_gaussian_score_names_the_class_without_fit_samples() -> None:
    from difair.eval.posthoc.features import Mahalanobis, RelativeMahalanobis

    g = torch.Generator().manual_seed(0)
    fs = FeatureSet(logits=torch.randn(40, 6, generator=g), labels=torch.arange(40) % 5,
                    features={"pooled": torch.randn(40, 3, generator=g)})  # fmt: skip
    with pytest.raises(DifairError, match="every class 0..5 needs fit samples; none for class 5"):
        Mahalanobis().fit(fs)  # the last class, missing: a direct fit refuses what evaluate() skips
    both = FeatureSet(logits=fs.logits[:, :2], labels=torch.arange(40) % 2, features=fs.features)
    assert RelativeMahalanobis().fit(both).score(both).shape == (40,)


def test_a_direct_fit_refuses_what_evaluate_skips() -> None:
    from difair.eval.posthoc.features import KNN, Mahalanobis

    _, train, _, _ = _model_and_data()
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3))
    few = extract(model, (train[0][:10], train[1][:10]))  # 8 pooled features, 3 classes: 10 - 3 < 8
    with pytest.raises(DifairError, match="mahalanobis: a tied covariance of 8 features needs at least 11"):
        Mahalanobis().fit(few)
    with pytest.raises(DifairError, match="knn: k=50 exceeds the 10 fit samples"):
        KNN().fit(few)


def test_a_gaussian_score_is_skipped_when_its_covariance_cannot_be_estimated() -> None:
    model, train, known, unknown = _model_and_data()  # 8 pooled features, 3 classes
    few = (train[0][:10], train[1][:10])  # 10 - 3 < 8: the tied covariance is singular, its inverse noise
    table = evaluate(model, known, unknown, fit_on=few, scores=["mahalanobis", "rmd", "msp"])
    reason = (
        "a tied covariance of 8 features needs at least 11 fit samples (8 + one per class), fit_on has 10"
    )
    assert table.skipped["mahalanobis"].startswith(reason) and table.skipped["rmd"].startswith(reason)
    two = train[1][:10] < 2  # and no sample of class 2: that, not the sample count, is the first thing to fix
    table = evaluate(
        model, known, unknown, fit_on=(train[0][:10][two], train[1][:10][two]), scores=["mahalanobis"]
    )
    assert table.skipped["mahalanobis"] == "every class 0..2 needs fit samples; none for class 2"
    enough = (train[0][:11], train[1][:11])
    shuffled = torch.randperm(11, generator=torch.Generator().manual_seed(1))
    rows = [
        evaluate(model, known, unknown, fit_on=fit, scores=["mahalanobis"])["mahalanobis"]["auroc"]
        for fit in (enough, (enough[0][shuffled], enough[1][shuffled]))
    ]
    assert rows[0] == pytest.approx(rows[1], abs=1e-6)  # the same samples in another order: the same ranking


def test_inputs_as_users_hold_them() -> None:
    model, train, known, unknown = _model_and_data()
    ref = evaluate(model, known, unknown, fit_on=train, scores=["msp", "knn"], options={"knn": {"k": 5}})
    as_list = evaluate(
        model,
        list(known),
        unknown.double(),
        fit_on=(train[0].double(), train[1].numpy()),
        scores=["msp", "knn"],
        options={"knn": {"k": 5}},
    )  # [X, y], float64 inputs, numpy labels
    assert as_list.to_dict().keys() == ref.to_dict().keys()
    for score in ("msp", "knn"):
        assert as_list[score]["auroc"] == pytest.approx(ref[score]["auroc"], abs=1e-6)
    for short in ((known[0], known[1][:-1]), [known[0], known[1][:-1]]):
        with pytest.raises(DifairError, match="30 inputs but 29 labels"):
            evaluate(model, short, unknown, fit_on=train, scores=["msp"])
    fs = extract(model, train)
    listed = FeatureSet(logits=fs.logits.numpy(), labels=fs.labels.tolist(), features=fs.features)
    assert listed.labels.dtype == torch.int64 and torch.equal(listed.labels, fs.labels)
    # options given for a name reach every source of it, a spec's own win
    table = evaluate(
        model,
        known,
        unknown,
        fit_on=(train[0][:20], train[1][:20]),
        scores=["knn", "knn:z"],
        options={"knn": {"k": 5}, "knn:z": {"k": 3}},
    )
    assert not table.skipped  # k=50 (the default) exceeds the 20 fit samples
    k3 = evaluate(
        model,
        known,
        unknown,
        fit_on=(train[0][:20], train[1][:20]),
        scores=["knn:z"],
        options={"knn": {"k": 3}},
    )
    assert table["knn:z"]["auroc"] == k3["knn:z"]["auroc"]
    with pytest.raises(DifairError, match=r"device cuda:7 is not here"):
        extract(model, train, device="cuda:7")


def test_after_the_first_batch_only_the_feature_layer_is_hooked() -> None:
    from difair.eval.extraction import _FeatureTap

    model = nn.Sequential(*[nn.Linear(8, 8) for _ in range(6)], nn.Linear(8, 3))  # a ViT has hundreds
    tap = _FeatureTap(model, None)
    assert len(tap.hooks) == 7
    with torch.no_grad():
        out = model(torch.randn(4, 8))
    tap.first_batch(out)
    assert tap.layer is model[6] and tap.gives_logits and len(tap.hooks) == 1  # one input kept a batch
    assert tap.take().shape == (4, 8) and tap.take() is None
    tap.remove()
    assert not any(m._forward_hooks for m in model)


def test_a_named_layer_with_the_logits_shape_keeps_its_head() -> None:
    _, train, known, unknown = _model_and_data()
    torch.manual_seed(0)
    scaled = _ScaledLogits()  # returns 2 * fc(...): the user names fc, the temperature is theirs to know
    fs = extract(scaled, train, feature_layer="fc")
    assert fs.head is not None and torch.equal(fs.linear[0], scaled.fc.weight)
    with pytest.warns(UserWarning, match=r"feature layer 'proj' \(named\) does not give the model's output"):
        fs = extract(scaled, train, feature_layer="proj")  # 8 outputs for 3 logits
    assert fs.head is None


def test_a_users_mistakes_at_the_edge_are_one_line_errors() -> None:
    # each once raised from deep inside (a conv's RuntimeError, an AttributeError, a TypeError)
    model, (x_fit, y_fit), (x_known, y_known), x_unk = _model_and_data()
    args = ((x_known, y_known), x_unk)

    def fails(match: str, *a, **kw) -> None:
        with pytest.raises(DifairError, match=match):
            evaluate(model, *(a or args), **{"fit_on": (x_fit, y_fit), "scores": "msp", **kw})

    fails(r"the inputs are torch.uint8: give float tensors", (x_known.to(torch.uint8), y_known), x_unk)
    fails(r"the model has no module 'penultimate': name one of", feature_layer="penultimate")
    fails(
        r"score 'knn' takes no option 'K': its options are k, device", scores="knn", options={"knn": {"K": 3}}
    )
    fails(r"batch_size must be a whole number >= 1, got 0", batch_size=0)
    fails(r"unknown is empty: no samples", (x_known, y_known), x_unk[:0])
    fails(r"labels must be class indices \(integers\), got torch.float32", (x_known, y_known.float()), x_unk)
    fails(r"a batch of the data is a dict", [{"x": x_known, "y": y_known}], x_unk)

    class Pair(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
            return self.inner(x), x

    with pytest.raises(
        DifairError, match=r"the model returned tuple: evaluate needs logits \[batch, classes\]"
    ):
        evaluate(Pair(), (x_known, y_known), x_unk, fit_on=(x_fit, y_fit), scores="msp")
    from difair.eval.api import ScoreTable

    with pytest.raises(DifairError, match=r"the table has no scores \(vim: no linear head\)"):
        ScoreTable(rows=[], skipped={"vim": "no linear head"}).best()
