"""difair eval RUN --scores and difair benchmark --scores: every post-hoc score on trained runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from difair.cli import main
from difair.engine import posthoc as P
from difair.engine.feature_cache import FEATURES_DIR
from tiny import tiny_overrides

pytestmark = pytest.mark.slow


def _sets(method: str, extra: list[str] | None = None) -> list[str]:
    return [a for o in tiny_overrides(method, 2, extra) for a in ("--set", o)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("posthoc-cli")
    out = {}
    for m in ("difair", "ce", "cac"):
        out[m] = root / m
        assert main(["train", "--quiet", "--out", str(out[m]), *_sets(m)]) == 0
    return out


@pytest.mark.parametrize("method", ["difair", "ce", "cac"])
def test_eval_scores_all_adds_every_applicable_score(runs, method, monkeypatch, capsys):
    run = runs[method]
    own = set(json.loads((run / "results.json").read_text())["scores"])
    seen = {}
    real = P.evaluate

    def spy(model, known, unknown, *, fit_on, scores):
        seen["fit"], seen["known"], seen["unknown"] = fit_on, known, unknown
        return real(model, known, unknown, fit_on=fit_on, scores=scores)

    monkeypatch.setattr(P, "evaluate", spy)
    assert main(["eval", str(run), "--scores", "all"]) == 0
    results = json.loads((run / "results.json").read_text())
    post = results["posthoc"]
    assert post["fit_on"] == "train"
    assert own <= set(results["scores"])  # the method's own scores stay
    assert {"energy", "knn", "mahalanobis", "react"} <= set(post["added"]) <= set(results["scores"])
    for name in post["added"]:
        m = results["scores"][name]
        assert 0 <= m["auroc"] <= 1 and m["closed_set_accuracy"] == results["closed_set_accuracy"]
    # the detectors were fitted on the training images alone (their labels, in order), never on test images
    from difair.config import TrainConfig
    from difair.data import get_dataset

    data = get_dataset(TrainConfig.from_yaml((run / "config.yaml").read_text()).resolve().data)
    assert seen["fit"].labels.tolist() == data.train_labels.tolist()
    assert len(seen["known"]) + len(seen["unknown"]) == len(data.test_labels)
    if method == "difair":
        assert "odin" in post["skipped"] and "vim" in post["skipped"]
        # DIFAIR's MLS stand-in is minus the nearest distance: the paper's score, recomputed independently
        assert results["scores"]["mls"]["auroc"] == pytest.approx(results["scores"]["min_distance"]["auroc"])
    else:
        assert "odin" in post["added"] and "vim" in post["added"]
    # features are cached next to the run and reused
    cache = run / FEATURES_DIR / "train.pt"
    stamp = cache.stat().st_mtime_ns
    assert main(["eval", str(run), "--scores", "knn"]) == 0
    assert cache.stat().st_mtime_ns == stamp


def test_an_unknown_score_name_is_one_line_before_any_work(runs, capsys):
    before = (runs["ce"] / "results.json").read_bytes()
    assert main(["eval", str(runs["ce"]), "--scores", "knn,nonsense"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nonsense" in err
    assert (runs["ce"] / "results.json").read_bytes() == before


def test_a_folder_run_gets_every_score(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "pets"
    for split, n in (("train", 12), ("test", 6)):
        for c, name in enumerate(("cat", "dog", "fox")):
            d = root / split / name
            d.mkdir(parents=True)
            for i in range(n):
                img = np.full((8, 8, 3), 40 + 80 * c, dtype=np.uint8) + rng.integers(
                    0, 30, (8, 8, 3), dtype=np.uint8
                )
                Image.fromarray(img).save(d / f"{i}.png")
    run = tmp_path / "run"
    extra = [f"data.name=folder:{root}", "data.known=cat,dog", "data.image_size=8"]
    assert main(["train", "--quiet", "--out", str(run), *_sets("ce", extra)]) == 0
    assert main(["eval", str(run), "--scores", "all"]) == 0
    results = json.loads((run / "results.json").read_text())
    post = results["posthoc"]
    assert {"energy", "mahalanobis:z", "vim"} <= set(post["added"]) and post["fit_on"] == "train"
    assert "k=50 exceeds the 24 fit samples" in post["skipped"]["knn"]  # 2 known classes x 12 images
    assert "needs at least" in post["skipped"]["mahalanobis"]  # more pooled features than 24 samples estimate


def test_benchmark_scores_puts_them_in_the_table_with_the_best_marked(tmp_path, capsys):
    out = tmp_path / "bench"
    argv = [
        "benchmark",
        "--quiet",
        "--methods",
        "ce",
        "--datasets",
        "digits",
        "--splits",
        "0",
        "--epochs",
        "1",
    ]
    assert main([*argv, "--out", str(out), "--scores", "energy,knn"]) == 0
    table = (out / "table.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| digits | ce |")]
    assert {r.split(" | ")[2] for r in rows} >= {"msp", "mls", "energy", "knn"}
    assert (
        sum("**" in r.split(" | ")[6] for r in rows) >= 1
    )  # the best AUROC of the method in bold (after Epochs)


def test_a_plain_eval_keeps_the_post_hoc_scores_of_the_same_checkpoint(tmp_path, capsys):
    # a plain eval (or a --resume of a finished run) once rewrote results.json without them, silently
    import shutil

    run = tmp_path / "run"
    assert main(["train", "--quiet", "--out", str(run), *_sets("ce")]) == 0
    assert main(["eval", str(run), "--scores", "energy"]) == 0
    assert main(["eval", str(run), "--scores", "knn"]) == 0  # a second call adds to the first's
    before = json.loads((run / "results.json").read_text())
    assert before["posthoc"]["added"] == ["energy", "knn"] and set(before["posthoc"]["timing_s"]) == {
        "energy",
        "knn",
    }
    assert main(["eval", str(run)]) == 0
    after = json.loads((run / "results.json").read_text())
    assert after["scores"]["energy"] == before["scores"]["energy"] and after["posthoc"] == before["posthoc"]
    assert main(["train", "--quiet", "--resume", str(run)]) == 0  # finished: evaluated again, nothing trained
    assert json.loads((run / "results.json").read_text())["scores"]["knn"] == before["scores"]["knn"]
    other = tmp_path / "other"
    shutil.copytree(run, other)
    record = json.loads((other / "results.json").read_text())
    record["posthoc"]["checkpoint"] = "0123456789abcdef"  # computed on another checkpoint
    (other / "results.json").write_text(json.dumps(record))
    capsys.readouterr()
    assert main(["eval", str(other)]) == 0
    err = capsys.readouterr().err
    assert (
        "difair: warning: the post-hoc scores of the replaced results.json (energy, knn) came from another"
        in err
    )
    assert f"difair eval {other} --scores energy,knn computes them again" in err
    assert "energy" not in json.loads((other / "results.json").read_text())["scores"]
