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
