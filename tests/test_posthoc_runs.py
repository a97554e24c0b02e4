"""Every post-hoc score on a trained DIFAIR, CE and CAC run (benchmarks/posthoc_scores.py), consistent with results.json."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from difair.engine.fit import fit
from difair.eval.posthoc import ALL_SCORES
from tiny import tiny_config

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "posthoc_scores.py"
CLASS_SUMS = {s for s in ALL_SCORES if "class_activation" in s}


def _script():
    spec = importlib.util.spec_from_file_location("posthoc_scores", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.parametrize("method", ["difair", "ce", "cac"])
def test_every_score_on_a_trained_run(method: str, tmp_path: Path) -> None:
    pytest.importorskip("pytorch_ood")
    results = fit(tiny_config(method, epochs=2), tmp_path / method, show_progress=False)
    table = _script().score_run(tmp_path / method)
    assert {r["score"] for r in table.rows} | set(table.skipped) == set(ALL_SCORES)
    assert set(table.skipped) == ({"vim", "odin"} if method == "difair" else CLASS_SUMS)
    assert [r["closed_set_accuracy"] for r in table.rows] == pytest.approx(
        [results["closed_set_accuracy"]] * len(table.rows)
    )
    same = {
        "difair": {"mls": "min_distance", "mls:class_activation": "class_activation"},
        "ce": {"msp": "msp", "mls": "mls"},
    }
    for ours, theirs in same.get(method, {}).items():
        assert table[ours]["auroc"] == pytest.approx(results["scores"][theirs]["auroc"], abs=1e-6)
        assert table[ours]["oscr"] == pytest.approx(results["scores"][theirs]["oscr"], abs=1e-6)


def _metrics(auroc: float) -> dict[str, float]:
    return {"closed_set_accuracy": 0.9, "auroc": auroc, "oscr": 0.5, "fpr95": 0.2}


def test_bench_table_averages_finished_runs_and_marks_the_best(tmp_path: Path) -> None:
    import json

    def write(name: str, scores: dict[str, float], complete: bool = True) -> None:
        d = tmp_path / "runs" / name
        d.mkdir(parents=True)
        res = {
            "dataset": "mnist",
            "method": "difair",
            "score": "min_distance",
            "checkpoint": {"epoch": 5 if complete else 2, "epochs": 5, "complete": complete},
            "scores": {k: _metrics(v) for k, v in scores.items()},
            "posthoc": {"timing_s": {"knn": {"fit": 0.5, "score": 1.5}}},
        }
        (d / "results.json").write_text(json.dumps(res))

    write("a", {"min_distance": 0.90, "knn": 0.80})
    write("b", {"min_distance": 0.80, "knn": 0.96})
    write("c", {"min_distance": 0.10, "knn": 0.10}, complete=False)  # partial: left out
    rows = {r.split(" | ")[2]: r for r in _script().bench_table(tmp_path).splitlines()[2:]}
    # min_distance: mean 0.85, population std 0.05; knn: mean 0.88 (the best), std 0.08
    assert "85.00 ± 5.00" in rows["min_distance (own)"] and "| 2 |" in rows["min_distance (own)"]
    assert "88.00 ± 8.00" in rows["**knn**"] and rows["**knn**"].endswith("| 0.500 | 1.500 |")
