"""docs/scores.md has one row per registered detector and no row for a detector that does not exist."""

from __future__ import annotations

import re
from pathlib import Path

from difair.eval.posthoc import available_detectors

DOC = Path(__file__).resolve().parents[1] / "docs" / "scores.md"


def test_every_detector_has_a_row() -> None:
    text = DOC.read_text()
    table = text[text.index("## The detectors") :].split("\n## ")[0]
    rows = re.findall(r"^\| `([a-z_]+)` \|", table, flags=re.M)
    assert sorted(rows) == available_detectors()


def test_the_default_scores_of_evaluate_are_the_ones_the_doc_names():
    from pathlib import Path

    from difair.eval.api import DEFAULT_SCORES

    doc = (Path(__file__).resolve().parents[1] / "docs" / "scores.md").read_text()
    line = doc.split("Without `scores`, `evaluate` computes `difair.eval.api.DEFAULT_SCORES` (")[1].split(
        ":"
    )[0]
    assert [w.strip(" `\n") for w in line.split(",")] == list(DEFAULT_SCORES)
