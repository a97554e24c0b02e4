"""Result tables: mean and (population) std over splits, per dataset, method and score."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import numpy as np

METRICS = ("closed_set_accuracy", "auroc", "oscr", "aupr_in", "aupr_out", "fpr95")
SHORT = {
    "closed_set_accuracy": "Acc",
    "auroc": "AUROC",
    "oscr": "OSCR",
    "aupr_in": "AUPR-in",
    "aupr_out": "AUPR-out",
    "fpr95": "FPR95",
}


def aggregate(results: list[dict[str, Any]], scores: str = "all") -> list[dict[str, Any]]:
    """One row per (dataset, method, score): mean and population std of each metric over the runs (splits).

    ``scores="all"`` makes a row for every score in each run's ``scores``; ``"default"`` only the method's own.
    """
    groups: dict[tuple[str, str, str], list[dict[str, float]]] = defaultdict(list)
    splits: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for r in results:
        names = r["scores"] if scores == "all" else {r["score"]: r["scores"][r["score"]]}
        for name, metrics in names.items():
            key = (r["dataset"], r["method"], name)
            groups[key].append(metrics)
            splits[key].append(r["split"])
    rows = []
    for (dataset, method, score), runs in groups.items():
        row: dict[str, Any] = {"dataset": dataset, "method": method, "score": score, "n_runs": len(runs)}
        row["splits"] = sorted(splits[(dataset, method, score)])
        for m in METRICS:
            vals = np.array([run[m] for run in runs if m in run], dtype=float)
            if len(vals):
                row[m] = {"mean": float(vals.mean()), "std": float(vals.std(ddof=0))}
        rows.append(row)
    order = {"difair": 0, "ce": 1, "cac": 2}
    rows.sort(key=lambda r: (r["dataset"], order.get(r["method"], 9), r["method"], r["score"]))
    return rows


def _cell(row: dict[str, Any], metric: str) -> str:
    if metric not in row:
        return "-"
    v = row[metric]
    return f"{100 * v['mean']:.2f} ± {100 * v['std']:.2f}"


def to_markdown(
    rows: list[dict[str, Any]], metrics: tuple[str, ...] = ("closed_set_accuracy", "auroc", "oscr")
) -> str:
    """A Markdown table in percent (mean ± std over splits), one row per dataset, method and score."""
    head = ["Dataset", "Method", "Score", "Runs", *(SHORT[m] + " (%)" for m in metrics)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["dataset"], r["method"], r["score"], str(r["n_runs"]), *(_cell(r, m) for m in metrics)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def to_json(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, indent=2) + "\n"
