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


def checkpoint_of(result: dict[str, Any]) -> dict[str, Any]:
    """The ``"checkpoint"`` record of a result (epoch of epochs, complete); ``epoch`` None where it is not
    recorded (results of difair <= 0.1.0)."""
    ck = result.get("checkpoint")
    if isinstance(ck, dict) and {"epoch", "epochs", "complete"} <= set(ck):
        return {k: ck[k] for k in ("epoch", "epochs", "complete")}
    return {"epoch": None, "epochs": result.get("epochs"), "complete": False}


def epochs_label(ck: dict[str, Any]) -> str:
    """``"4/4"``, ``"2/4 partial"`` or ``"?/4 partial"`` (epoch not recorded): the epoch of epochs of a row."""
    epoch = "?" if ck["epoch"] is None else str(ck["epoch"])
    return f"{epoch}/{ck['epochs']}" + ("" if ck["complete"] else " partial")


def aggregate(results: list[dict[str, Any]], scores: str = "all") -> list[dict[str, Any]]:
    """One row per (dataset, method, score, seed, checkpoint epoch of epochs): mean and population std of each
    metric over the runs (splits). Runs of different seeds, or whose checkpoints hold different epochs (a partial run
    beside finished ones), are never averaged together: each row says its ``seed`` and ``checkpoint``.

    ``scores="all"`` makes a row for every score in each run's ``scores``; ``"default"`` only the method's own.
    """
    Key = tuple[str, str, str, Any, Any, Any, bool]
    groups: dict[Key, list[dict[str, float]]] = defaultdict(list)
    splits: dict[Key, list[int]] = defaultdict(list)
    for r in results:
        names = r["scores"] if scores == "all" else {r["score"]: r["scores"][r["score"]]}
        ck = checkpoint_of(r)
        for name, metrics in names.items():
            key = (
                r["dataset"],
                r["method"],
                name,
                r.get("seed"),
                ck["epoch"],
                ck["epochs"],
                bool(ck["complete"]),
            )
            groups[key].append(metrics)
            splits[key].append(r["split"])
    rows = []
    for key, runs in groups.items():
        dataset, method, score, seed, epoch, epochs, complete = key
        row: dict[str, Any] = {"dataset": dataset, "method": method, "score": score, "n_runs": len(runs)}
        row["seed"] = seed
        row["splits"] = sorted(splits[key])
        row["checkpoint"] = {"epoch": epoch, "epochs": epochs, "complete": complete}
        for m in METRICS:
            vals = np.array([run[m] for run in runs if m in run], dtype=float)
            if len(vals):
                row[m] = {"mean": float(vals.mean()), "std": float(vals.std(ddof=0))}
        rows.append(row)
    order = {"difair": 0, "ce": 1, "cac": 2}
    rows.sort(key=lambda r: (r["dataset"], order.get(r["method"], 9), r["method"], r["score"], str(r["seed"]),
                             not r["checkpoint"]["complete"], r["checkpoint"]["epoch"] or 0))  # fmt: skip
    return rows


def _cell(row: dict[str, Any], metric: str) -> str:
    if metric not in row:
        return "-"
    v = row[metric]
    return f"{100 * v['mean']:.2f} ± {100 * v['std']:.2f}"


def several_seeds(rows: list[dict[str, Any]]) -> bool:
    """Whether ``rows`` hold more than one seed (tables then give each row's seed a column)."""
    return len({str(r.get("seed")) for r in rows}) > 1


def to_markdown(
    rows: list[dict[str, Any]], metrics: tuple[str, ...] = ("closed_set_accuracy", "auroc", "oscr")
) -> str:
    """A Markdown table in percent (mean ± std over splits), one row per dataset, method and score; "Epochs" is
    the epoch of epochs its checkpoints hold ("2/4 partial": an unfinished run)."""
    seeds = several_seeds(rows)
    head = ["Dataset", "Method", "Score", *(["Seed"] if seeds else []), "Runs", "Epochs",
            *(SHORT[m] + " (%)" for m in metrics)]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["dataset"], r["method"], r["score"], *([str(r.get("seed"))] if seeds else []), str(r["n_runs"]),
                 epochs_label(r["checkpoint"]), *(_cell(r, m) for m in metrics)]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def to_json(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, indent=2) + "\n"
