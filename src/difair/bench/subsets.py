"""The per-subset table of runs that report unknown subsets (the SSB difficulties): rows, Markdown and CSV."""

from __future__ import annotations

import csv
import io
from typing import Any

from difair.bench.cells import OURS, SHORT, csv_pct, mean_std
from difair.eval.tables import aggregate, epochs_label

SUBSET_CSV = "table_subsets.csv"  # written only where runs report unknown subsets (SSB)


def subset_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per unknown subset (the SSB difficulties of docs/ssb.md, in the order the runs list them): rows aggregated
    as ``table_rows``'s, each with its ``subset``, from the runs' ``unknown_subsets``; none for other datasets."""
    names: list[str] = []
    for r in results:
        names += [n for n, sub in r.get("unknown_subsets", {}).items() if "scores" in sub and n not in names]
    rows = []
    for name in names:
        runs = [
            {**r, "scores": r["unknown_subsets"][name]["scores"]}
            for r in results
            if "scores" in r.get("unknown_subsets", {}).get(name, {})
        ]
        rows += [{**row, "subset": name} for row in aggregate(runs)]
    order = {row_key(r): i for i, r in enumerate(aggregate(results))}
    rows.sort(key=lambda r: (order.get(row_key(r), len(order)), names.index(r["subset"])))
    return rows


def row_key(row: dict[str, Any]) -> tuple[Any, ...]:
    """What tells the rows of one table apart: dataset, method, score, seed and checkpoint."""
    ck = row["checkpoint"]
    return (
        row["dataset"],
        row["method"],
        row["score"],
        str(row["seed"]),
        ck["epoch"],
        ck["epochs"],
        ck["complete"],
    )


def subset_markdown(subsets: list[dict[str, Any]], seeds: bool) -> list[str]:
    """One line per table row, its AUROC and OSCR on each unknown subset (columns in the runs' subset order)."""
    names = list(dict.fromkeys(r["subset"] for r in subsets))
    by_row: dict[tuple[Any, ...], dict[str, dict[str, Any]]] = {}
    for r in subsets:
        by_row.setdefault(row_key(r), {})[r["subset"]] = r
    head = ["Dataset", "Method", "Score", *(["Seed"] if seeds else []), "Runs", "Epochs",
            *(f"{n} AUROC (%)" for n in names), *(f"{n} OSCR (%)" for n in names)]  # fmt: skip
    lines = [
        "Per unknown subset (the SSB difficulties, docs/ssb.md): each on all known test images plus that subset's "
        "unknown images; mean ± population std over splits, in percent.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for per in by_row.values():
        r = next(iter(per.values()))
        cells = [r["dataset"], r["method"], r["score"], *([str(r["seed"])] if seeds else []), str(r["n_runs"]),
                 epochs_label(r["checkpoint"])]  # fmt: skip
        cells += [mean_std(per[n], m) if n in per else "-" for m in ("auroc", "oscr") for n in names]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def subsets_csv(subsets: list[dict[str, Any]]) -> str:
    """One line per row and unknown subset, in percent: our mean and std per metric."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    cols = [f"{SHORT[m]}_{s}_pct" for m in OURS for s in ("mean", "std")]
    w.writerow(["dataset", "method", "score", "seed", "subset", "n_runs", "splits", *cols, "checkpoint_epoch",
                "epochs", "complete"])  # fmt: skip
    for r in subsets:
        ours = [csv_pct(r[m][s]) if m in r else "" for m in OURS for s in ("mean", "std")]
        ck = r["checkpoint"]
        w.writerow([r["dataset"], r["method"], r["score"], r["seed"], r["subset"], r["n_runs"],
                    " ".join(map(str, r["splits"])), *ours, ck["epoch"], ck["epochs"],
                    str(ck["complete"]).lower()])  # fmt: skip
    return buf.getvalue()
