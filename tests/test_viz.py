"""Figures: each analysis on a digits run and on an MNIST run, checked for what it shows, not only that it exists."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.image import AxesImage
from matplotlib.patches import Rectangle
from PIL import Image

from difair.cli import main
from difair.data import get_dataset
from difair.engine.load import load_run
from difair.errors import DifairError
from difair.nn.functional import class_activations, filter_correlation_penalty
from difair.viz import activations as A
from difair.viz import cards, curves, embeddings, representations
from difair.viz.analysis import analyze
from difair.viz.style import save_figure
from viz_runs import digits_run, mnist_run


def _ax(fig, label: str):
    found = [a for a in fig.axes if a.get_label() == label]
    assert len(found) == 1, f"no single axes labelled {label!r}: {[a.get_label() for a in fig.axes]}"
    return found[0]


def _ylabels(ax) -> list[str]:
    return [t.get_text() for t in ax.get_yticklabels()]


def _image(ax) -> AxesImage:
    return [c for c in ax.get_children() if isinstance(c, AxesImage)][-1]


@pytest.fixture(scope="module")
def ra(tmp_path_factory):
    run = digits_run(tmp_path_factory, "difair")
    return analyze(run, data=get_dataset(load_run(run).config.data), device="cpu")


@pytest.fixture(scope="module")
def mnist_ra(tmp_path_factory):
    run, data = mnist_run(tmp_path_factory)
    return analyze(run, data=data, device="cpu")


def _expected_top(z: torch.Tensor, n: int, names: list[str], k: int) -> list[str]:
    sums = class_activations(z[None], n)[0]
    order = torch.sort(sums, descending=True, stable=True).indices[:k]
    return [names[i] for i in order]


def check_card(ra, index: int, k: int) -> None:
    fig = cards.sample_card(ra, index, top_k=k)
    z = ra.test_outputs[index]
    n = ra.features_per_class
    ax = _ax(fig, "z")
    expected = _expected_top(z, n, ra.class_names, k)
    assert _ylabels(ax) == expected
    sums = [float(z.reshape(-1, n)[ra.class_names.index(c)].sum()) for c in expected]
    assert sums == sorted(sums, reverse=True)
    shown = _image(ax).get_array()
    rows = torch.stack([z.reshape(-1, n)[ra.class_names.index(c)] for c in expected])
    np.testing.assert_allclose(np.asarray(shown), rows.numpy(), rtol=1e-6)
    texts = [t.get_text() for t in ax.texts]
    assert texts[0] == f"{float(rows[0, 0]):.2f}" and len(texts) == k * n
    # one colour scale for the three heatmaps
    clims = {_image(_ax(fig, a)).get_clim() for a in ("z", "pred_mean", "true_mean")}
    assert len(clims) == 1
    pred = int(ra.test_preds[index])
    assert f"'{ra.class_names[pred]}'" in _ax(fig, "pred_mean").get_title()
    assert ra.true_name(index) in _ax(fig, "image").get_title()
    decision = "ACCEPTED" if float(ra.test_scores[index]) >= ra.threshold else "REJECTED"
    assert decision in _ax(fig, "text").texts[0].get_text()


def test_card_shows_top_k_classes_in_order(ra) -> None:
    n_known = int((ra.data.test_labels >= 0).sum())
    for index, k in ((0, 6), (5, 3), (n_known + 2, 6)):  # known and unknown samples
        check_card(ra, index, k)


def test_hinton_card_square_area_is_activation(ra) -> None:
    fig = cards.sample_card(ra, 1, top_k=4, hinton=True)
    ax = _ax(fig, "z")
    squares = [p for p in ax.patches if isinstance(p, Rectangle)]
    z = ra.test_outputs[1].reshape(-1, ra.features_per_class)
    rows = torch.stack([z[ra.class_names.index(c)] for c in _ylabels(ax)])
    assert len(squares) == int((rows > 0).sum())
    areas = sorted(s.get_width() * s.get_height() for s in squares)
    values = sorted(float(v) for v in rows.ravel() if v > 0)
    ratio = np.array(areas) / np.array(values)
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-6)  # area proportional to activation


def test_mean_representation_grid(ra) -> None:
    fig = representations.mean_representations_figure(ra, "train", correct_only=True)
    means, counts = ra.class_means("train", correct_only=True)
    assert int(counts.sum()) == int((ra.train_preds == ra.data.train_labels).sum())
    clims = set()
    for c, name in enumerate(ra.class_names):
        ax = _ax(fig, f"mean:{name}")
        im = _image(ax)
        np.testing.assert_allclose(
            np.asarray(im.get_array()), means[c].reshape(ra.num_classes, -1).numpy(), rtol=1e-6
        )
        assert _ylabels(ax) == ra.class_names and f"n={int(counts[c])}" in ax.get_title()
        clims.add(im.get_clim())
    assert len(clims) == 1
    test_all, n_all = ra.class_means("test", correct_only=False)
    assert torch.equal(n_all, torch.bincount(ra.data.test_labels[ra.data.test_labels >= 0], minlength=6))


def test_a_class_without_images_is_said_not_drawn_as_zeros(ra, monkeypatch) -> None:
    means, counts = ra.class_means("train", correct_only=True)
    means, counts = means.clone(), counts.clone()
    means[1], counts[1] = 0.0, 0
    monkeypatch.setattr(ra, "class_means", lambda split, correct_only: (means, counts))
    fig = representations.mean_representations_figure(ra, "train", correct_only=True)
    empty = _ax(fig, f"mean:{ra.class_names[1]}")
    assert not empty.get_images() and "no correctly classified train images" in empty.texts[0].get_text()
    assert _image(_ax(fig, f"mean:{ra.class_names[0]}")) is not None


def test_tsne_draws_knowns_unknowns_and_anchors(ra) -> None:
    fig = embeddings.tsne_figure(ra, max_points=150, threads=1)
    ax = _ax(fig, "tsne")
    by_gid = {c.get_gid(): c for c in ax.collections}
    n_points = sum(len(c.get_offsets()) for g, c in by_gid.items() if g != "anchors")
    assert n_points == 150
    assert len(by_gid["anchors"].get_offsets()) == ra.num_classes
    assert {t.get_text() for t in ax.texts} == set(ra.class_names)
    assert "unknown" in by_gid and all(f"known:{c}" in by_gid for c in ra.class_names)
    labelled = embeddings.tsne_figure(ra, max_points=100, threads=1, label_unknowns=True, anchors=False)
    gids = {c.get_gid() for c in _ax(labelled, "tsne").collections}
    assert "anchors" not in gids and any(g.startswith("unknown:") for g in gids)


def test_confusion_matrices_at_the_threshold(ra) -> None:
    cm = embeddings.confusion_matrices(ra)
    labels, accepted = ra.data.test_labels, ra.accepted
    known = labels >= 0
    assert cm["known"].sum(1).tolist() == torch.bincount(labels[known], minlength=ra.num_classes).tolist()
    assert cm["known"][:, -1].sum() == int((known & ~accepted).sum())
    assert cm["unknown"].sum() == int((~known).sum()) and cm["unknown"][:, -1].sum() == int(
        (~known & ~accepted).sum()
    )
    right = known & accepted & (ra.test_preds == labels)
    assert np.trace(cm["known"][:, :-1]) == int(right.sum())
    assert cm["unknown_classes"] == ["0", "1", "6", "7"]  # digits split 0: unknown digits by name
    fig = embeddings.confusion_figure(ra)
    np.testing.assert_array_equal(np.asarray(_image(_ax(fig, "known_confusion")).get_array()), cm["known"])
    assert _ylabels(_ax(fig, "unknown_confusion")) == cm["unknown_classes"]


def test_class_similarity_is_cosine_of_class_means(ra) -> None:
    fig = representations.class_similarity_figure(ra)
    sim = np.asarray(_image(_ax(fig, "similarity")).get_array())
    means, _ = ra.class_means("test", correct_only=False)
    a, b = means[0].numpy(), means[1].numpy()
    assert sim[0, 1] == pytest.approx(a @ b / np.linalg.norm(a) / np.linalg.norm(b), rel=1e-5)
    np.testing.assert_allclose(np.diag(sim), 1.0, rtol=1e-5)
    np.testing.assert_allclose(sim, sim.T, atol=1e-6)


def test_filter_correlation_matches_the_penalty(ra) -> None:
    w = ra.run.model.head.weight.detach().cpu()
    corr = representations.filter_correlation_matrix(w)
    assert corr.shape == (w.shape[0], w.shape[0])
    torch.testing.assert_close(torch.diag(corr), torch.ones(w.shape[0]), atol=1e-5, rtol=0)
    same, cross = representations.within_class_correlations(corr.double(), ra.features_per_class)
    n = ra.features_per_class
    assert len(same) == ra.num_classes * n * (n - 1) // 2
    penalty = float(filter_correlation_penalty(w, n, "paper"))
    assert float(np.abs(same).mean()) == pytest.approx(penalty, rel=1e-4)
    fig = representations.filter_correlation_figure(ra.run)
    assert f"{penalty:.3f}" in " ".join(t.get_text() for t in _ax(fig, "histogram").get_legend().get_texts())


def test_activation_maps_have_the_image_size_and_pool_to_z(ra) -> None:
    img = ra.data.test_images[3]
    c = int(ra.test_preds[3])
    n = ra.features_per_class
    maps = A.activation_maps(ra.run, img, c)
    assert maps.shape == (n, *img.shape[-2:])
    raw = A.class_feature_maps(ra.run, img, c)
    torch.testing.assert_close(
        raw.mean((1, 2)), ra.test_outputs[3][c * n : (c + 1) * n], atol=1e-4, rtol=1e-4
    )
    big = torch.nn.functional.interpolate(img[None].float(), size=(40, 40))[0].to(torch.uint8)
    fig = A.activation_maps_figure(ra.run, img, [c, 0], display=big)
    name = ra.class_names[c]
    for j in range(n):
        ax = _ax(fig, f"map:{name}:{j}")
        assert np.asarray(_image(ax).get_array()).shape == (40, 40)
        assert ax.get_title().startswith(f"#{c * n + j} ({name})")
    assert {_image(_ax(fig, f"map:{ra.class_names[0]}:{j}")).get_clim() for j in range(n)} == {
        _image(_ax(fig, f"map:{name}:0")).get_clim()
    }
    with pytest.raises(DifairError, match="unknown class"):
        A.resolve_class(ra.run, "zebra")


def test_class_names_that_are_numbers_are_never_read_as_indices() -> None:
    from types import SimpleNamespace

    digits = SimpleNamespace(class_names=["2", "4", "5", "9", "8", "3"])
    assert A.resolve_class(digits, "4") == 1 and A.resolve_class(digits, 0) == 0  # a name; an int index
    for bad in ("0", "7"):  # "0" is not a class here: it must not draw class "2"
        with pytest.raises(DifairError, match=rf"unknown class '{bad}': choose one of 2, 4, 5, 9, 8, 3"):
            A.resolve_class(digits, bad)
    words = SimpleNamespace(class_names=["cat", "dog"])
    assert A.resolve_class(words, "1") == 1 and A.resolve_class(words, "dog") == 1
    with pytest.raises(DifairError, match="out of range: choose one of cat, dog"):
        A.resolve_class(words, "2")


def test_scores_and_roc_mark_the_threshold(ra) -> None:
    fig = curves.score_distribution_figure(ra)
    ax = _ax(fig, "scores")
    assert ax.lines[0].get_xdata()[0] == pytest.approx(ra.threshold)
    roc = curves.roc_figure(ra)
    ax = _ax(roc, "roc")
    marker = [ln for ln in ax.lines if ln.get_gid() == f"threshold:{ra.score_name}"][0]
    known = ra.data.test_labels >= 0
    s = ra.test_scores
    assert marker.get_xdata()[0] == pytest.approx(float((s[~known] >= ra.threshold).double().mean()))
    assert marker.get_ydata()[0] == pytest.approx(float((s[known] >= ra.threshold).double().mean()))
    results = json.loads((ra.run.run_dir / "results.json").read_text())
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert f"{ra.score_name}: AUROC {results['scores'][ra.score_name]['auroc']:.3f}" in legend
    assert len(legend) == len(ra.method.score_names)


def test_every_analysis_on_mnist(mnist_ra) -> None:
    ra = mnist_ra
    n_known = int((ra.data.test_labels >= 0).sum())
    check_card(ra, 7, 6)
    check_card(ra, n_known + 7, 4)
    assert len(representations.mean_representations_figure(ra).axes) == ra.num_classes + 1
    assert representations.class_similarity_figure(ra).axes
    assert representations.filter_correlation_figure(ra).axes
    tsne = _ax(embeddings.tsne_figure(ra, max_points=200, threads=1), "tsne")
    assert len([c for c in tsne.collections if c.get_gid() == "anchors"][0].get_offsets()) == 6
    cm = embeddings.confusion_matrices(ra)
    assert cm["known"].sum() == n_known and cm["unknown_classes"] == ["0", "1", "6", "7"]
    maps = A.activation_maps(ra.run, ra.data.test_images[0], 0)
    assert maps.shape == (ra.features_per_class, 16, 16)
    assert _ax(curves.roc_figure(ra), "roc").lines
    assert _ax(curves.score_distribution_figure(ra), "scores").patches


def test_difair_only_figures_refuse_other_methods(tmp_path_factory) -> None:
    run = digits_run(tmp_path_factory, "ce", epochs=2)
    ra = analyze(run, data=get_dataset(load_run(run).config.data), device="cpu")
    for make in (
        lambda: cards.sample_card(ra, 0),
        lambda: representations.mean_representations_figure(ra),
        lambda: representations.filter_correlation_figure(ra.run),
        lambda: A.activation_maps(ra.run, ra.data.test_images[0], 0),
    ):
        with pytest.raises(DifairError, match="needs a DIFAIR run"):
            make()
    # what is meaningful for every method still works: t-SNE of logits, ROC, scores, confusion, similarity
    gids = {
        c.get_gid() for c in _ax(embeddings.tsne_figure(ra, max_points=80, threads=1), "tsne").collections
    }
    assert "anchors" not in gids
    assert len(_ax(curves.roc_figure(ra), "roc").get_legend().get_texts()) == 2  # msp, mls
    assert embeddings.confusion_matrices(ra)["known"].shape == (6, 7)
    assert representations.class_similarity_figure(ra).axes


def test_save_figure_formats(ra, tmp_path: Path) -> None:
    fig = curves.roc_figure(ra)
    for ext, magic in (("png", b"\x89PNG"), ("pdf", b"%PDF"), ("svg", b"<?xml")):
        path = save_figure(fig, tmp_path / f"roc.{ext}")
        assert path.read_bytes().startswith(magic)
    with pytest.raises(DifairError, match="png, .pdf or .svg"):
        save_figure(fig, tmp_path / "roc.jpg")


@pytest.mark.parametrize(
    "kind, extra",
    [
        ("card", ["--index", "2"]),
        ("mean-representations", []),
        ("tsne", ["--max-points", "60"]),
        ("confusion", []),
        ("similarity", []),
        ("filter-correlation", []),
        ("activation-maps", ["--index", "2", "--class", "2"]),
        ("scores", []),
        ("roc", []),
    ],
)
def test_cli_plot_every_kind(tmp_path_factory, tmp_path: Path, kind: str, extra: list[str], capsys) -> None:
    run = digits_run(tmp_path_factory, "difair")
    out = tmp_path / f"{kind}.png"
    assert main(["plot", str(run), kind, "--out", str(out), "--device", "cpu", *extra]) == 0
    with Image.open(out) as im:
        assert im.size[0] > 200 and im.size[1] > 200


def _digit_png(folder: Path) -> Path:
    """A 16x16 grey PNG (any picture does for the error paths)."""
    path = folder / "digit.png"
    Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16)).save(path)
    return path


def test_cli_plot_and_explain_errors(tmp_path_factory, tmp_path: Path, capsys) -> None:
    run = digits_run(tmp_path_factory, "difair")
    ce = digits_run(tmp_path_factory, "ce", epochs=2)
    cases = [
        (["plot", str(run), "card", "--out", str(tmp_path / "c.png")], "exactly one of --index"),
        (["plot", str(run), "roc", "--out", str(tmp_path / "c.jpg")], "--out must end in .png"),
        (["plot", str(ce), "card", "--index", "0", "--out", str(tmp_path / "c.png")], "needs a DIFAIR run"),
        (["explain", str(ce), str(tmp_path / "x.png"), "--out", str(tmp_path)], "no image file"),
        (["plot", str(run), "activation-maps", "--index", "0", "--class", "zebra", "--out", str(tmp_path / "a.png")],
         "unknown class 'zebra'"),
        (["plot", str(run), "card", "--index", "0", "--top-k", "0", "--out", str(tmp_path / "c.png")], "must be >= 1, got 0"),
        (["plot", str(run), "tsne", "--max-points", "-3", "--out", str(tmp_path / "t.png")], "must be >= 1, got -3"),
        (["explain", str(run), str(_digit_png(tmp_path)), "--class", "zebra", "--out", str(tmp_path / "ex")],
         "unknown class 'zebra'"),
        (["plot", str(run), "similarity", "--all-samples", "--out", str(tmp_path / "s.png")],
         "plot similarity takes no --all-samples: of the per-kind options it reads --split"),
        (["plot", str(run), "tsne", "--index", "3", "--out", str(tmp_path / "t.png")], "plot tsne takes no --index"),
        (["plot", str(run), "roc", "--top-k", "3", "--out", str(tmp_path / "r.png")],
         "plot roc takes no --top-k: of the per-kind options it reads --score, --threshold"),
        (["plot", str(run), "tsne", "--score", "max_activation", "--out", str(tmp_path / "t.png")],
         "plot tsne takes no --score"),
        (["plot", str(run), "card", "--index", "0", "--label", "3", "--out", str(tmp_path / "c.png")],
         "--label goes with --image"),
        (["plot", str(run), "filter-correlation", "--top-k", "3", "--out", str(tmp_path / "f.png")],
         "plot filter-correlation takes no --top-k: it reads none of the per-kind options"),
    ]  # fmt: skip
    for argv, fragment in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert fragment in err and err.count("\n") == 1, err
    assert not (tmp_path / "ex").exists()  # the class is checked before the card is written


def test_cli_explain_writes_card_maps_and_prediction(tmp_path_factory, tmp_path: Path, capsys) -> None:
    run = digits_run(tmp_path_factory, "difair")
    data = get_dataset(load_run(run).config.data)
    img = tmp_path / "digit.png"
    Image.fromarray(data.test_images[0, 0].numpy()).resize((48, 48)).save(img)
    out = tmp_path / "explained"
    assert (
        main(
            [
                "explain",
                str(run),
                str(img),
                "--out",
                str(out),
                "--label",
                data.class_names[0],
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    pred = json.loads((out / "prediction.json").read_text())
    assert {p.name for p in out.iterdir()} == {"card.png", "activation_maps.png", "prediction.json"}
    from difair import load

    same = load(run, device="cpu").predict(str(img))
    assert pred["prediction"] == same.labels[0] and pred["score"] == pytest.approx(
        float(same.scores[0]), abs=1e-5
    )
    assert not pred["notes"]
    capsys.readouterr()
    typo = tmp_path / "typo"  # a label that is no class of the dataset (digits name their unknowns too)
    assert (
        main(["explain", str(run), str(img), "--out", str(typo), "--label", "sevn", "--device", "cpu"]) == 2
    )
    err = capsys.readouterr().err
    assert "--label 'sevn' is no class of the run's dataset" in err and not typo.exists()
    ce = digits_run(tmp_path_factory, "ce", epochs=2)
    assert main(["explain", str(ce), str(img), "--out", str(tmp_path / "ce")]) == 2
    assert "needs a DIFAIR run" in capsys.readouterr().err


def test_a_second_analysis_reads_the_outputs_the_first_kept(ra, monkeypatch) -> None:
    from difair.engine import feature_cache

    train, test = ra.train_outputs, ra.test_outputs
    assert (ra.run.run_dir / feature_cache.FEATURES_DIR / "outputs-train.pt").is_file()

    def no_model(*args, **kwargs):
        raise AssertionError("the outputs were computed again")

    monkeypatch.setattr(feature_cache, "collect_outputs", no_model)
    again = analyze(ra.run, data=ra.data, device="cpu")  # e.g. the next difair explain of the same run
    torch.testing.assert_close(again.train_outputs, train)
    torch.testing.assert_close(again.test_outputs, test)


def test_long_class_names_are_shortened_in_figures_keeping_start_and_end() -> None:
    from difair.viz.style import LABEL_CHARS, heatmap, new_figure, short

    name = "a_very_long_class_name_for_airplanes_and_jets"
    s = short(name)
    assert (
        len(s) == LABEL_CHARS and s.startswith("a_very_long_cl") and s.endswith("nd_jets") and "\u2026" in s
    )
    assert short("dog") == "dog" and short("x" * LABEL_CHARS) == "x" * LABEL_CHARS
    ax = new_figure(3, 3).add_subplot()
    heatmap(ax, np.eye(2), row_labels=[name, "dog"], col_labels=["f1", "f2"])
    assert _ylabels(ax) == [s, "dog"]
    twins = ["imagenet_class_golden_retriever_dog", "imagenet_class_labrador_retriever_dog"]
    assert short(twins[0]) == short(twins[1])  # alike once shortened: told apart by position
    heatmap(ax, np.eye(2), row_labels=twins, col_labels=["f1", "f2"])
    labels = _ylabels(ax)
    assert len(set(labels)) == 2 and labels[0].endswith(" #0") and labels[1].endswith(" #1")


def test_every_score_is_marked_at_the_threshold_predict_uses(tmp_path: Path) -> None:
    from difair.engine.fit import fit
    from difair.predict import calibrate, read_calibration
    from tiny import tiny_config

    run = tmp_path / "run"
    fit(tiny_config("difair", 2), run, show_progress=False)
    other = calibrate(run, 0.8, score="class_activation")[
        "threshold"
    ]  # stored for predict --score class_activation
    own = calibrate(run, 0.95)["threshold"]  # the default score's
    ra = analyze(run, device="cpu")
    assert ra.threshold == own == read_calibration(run, "min_distance")["threshold"]
    assert ra.threshold_for("class_activation") == other  # not recalibrated at the default score's keep
    fig = curves.score_distribution_figure(ra, "class_activation")
    assert _ax(fig, "scores").lines[0].get_xdata()[0] == pytest.approx(other)
    assert ra.threshold_for("max_activation") == pytest.approx(
        float(torch.quantile(ra.scores["max_activation"][ra.data.test_labels >= 0].double(), 0.05)), abs=0.5
    )  # no record: calibrated as the default score was, near the 5th percentile of the known scores


def test_long_class_names_are_shortened_in_every_figure(ra) -> None:
    import dataclasses

    from difair.viz.style import LABEL_CHARS, short

    long = [f"a_long_folder_name_for_class_number_{i}_of_the_dataset" for i in range(len(ra.class_names))]
    run = dataclasses.replace(ra.run, state={**ra.run.state, "class_names": long})
    fig = representations.filter_correlation_figure(run)
    labels = _ylabels(_ax(fig, "correlation"))
    assert len(set(labels)) == len(long) and all(len(t) <= LABEL_CHARS for t in labels)  # apart, and short
    maps = A.activation_maps_figure(run, ra.data.test_images[0].float() / 255, [0])
    assert _ax(maps, f"image:{long[0]}").get_ylabel() == f"class {short(long[0])}"


def test_figures_of_one_panel_per_class_are_refused_beyond_a_readable_count(ra, monkeypatch) -> None:
    from difair.viz import style

    # a 1000-class ImageNet-SSB report asked matplotlib for a ~10^5-inch grid and was killed for memory
    monkeypatch.setattr(style, "MAX_CLASSES", {"grid": 5, "matrix": 5})  # the digits run has 6 classes
    for draw, what in [
        (lambda: representations.mean_representations_figure(ra), "a mean-representation grid of 6 classes"),
        (lambda: representations.class_similarity_figure(ra), "a class-similarity matrix of 6 classes"),
        (lambda: embeddings.confusion_figure(ra), "a confusion matrix of 6 classes"),
        (lambda: representations.filter_correlation_figure(ra), "a filter-correlation matrix of 6 classes"),
    ]:
        with pytest.raises(DifairError, match=f"{what} is no readable figure \\(at most 5\\)"):
            draw()
    monkeypatch.setattr(style, "MAX_CLASSES", {"grid": 6, "matrix": 6})
    assert representations.mean_representations_figure(ra) is not None  # at the limit: drawn
