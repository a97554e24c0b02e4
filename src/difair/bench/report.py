"""Benchmark tables: ours (mean ± std over splits) beside the paper's Table 1, as Markdown, CSV and JSON.

Everything is rebuilt from the run folders (``OUT/runs/*/results.json`` and ``config.yaml``) and the manifest,
so ``difair benchmark --report-only OUT`` writes the same bytes as the run that produced them.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from difair.bench.cells import OURS, SHORT, csv_pct, mean_std, pct
from difair.bench.grid import read_manifest
from difair.bench.paper import PAPER_EPOCHS, PAPER_SOURCE, paper_cell, paper_differences, vaze_mls_auroc
from difair.bench.subsets import SUBSET_CSV, subset_markdown, subset_rows, subsets_csv
from difair.config import FAST_PATH, TrainConfig
from difair.engine import rundir as R
from difair.engine.runner import read_results, results_checkpoint
from difair.errors import DifairError
from difair.eval.tables import aggregate, checkpoint_of, epochs_label, several_seeds
from difair.options import load_yaml

SETTINGS = tuple(item.split("=", 1)[0] for item in FAST_PATH)  # how the runs were computed, beside fidelity


def finished_runs(out: Path) -> list[Path]:
    """The run folders under ``out/runs`` that hold results, in name order (not a hidden stage: engine.staging)."""
    return sorted(res.parent for res in (Path(out) / R.RUNS).glob(f"[!.]*/{R.RESULTS}"))


def collect_runs(out: Path) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(results, config) of every run with results under ``out/runs``, in folder-name order; each result's
    ``"checkpoint"`` (epoch of epochs, complete) is filled from the run's checkpoint where an earlier version did
    not record it, so that partial results are never tabled as complete."""
    runs = []
    for run_dir in finished_runs(out):
        cfg_path = run_dir / R.CONFIG
        cfg = load_yaml(cfg_path.read_text()) if cfg_path.is_file() else {}
        results = read_results(run_dir)
        assert results is not None
        results["checkpoint"] = results_checkpoint(run_dir, results)
        runs.append((results, cfg))
    return runs


def table_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Aggregated rows (every score of every method), each with the paper's numbers where Table 1 has them and,
    under ``differs``, why those come from another setting than the row's runs (``paper_differences``)."""
    keys = ("dataset", "method", "score", "seed", "n_runs", "splits", "checkpoint", *OURS)
    rows = [{k: r[k] for k in keys if k in r} for r in aggregate(results)]
    for row in rows:
        cell = paper_cell(row["dataset"], row["method"], row["score"])
        runs = [
            r
            for r in results
            if (r["dataset"], r["method"], r.get("seed")) == (row["dataset"], row["method"], row["seed"])
        ]
        differs = sorted(
            {d for r in runs for d in paper_differences(row["dataset"], row["score"], r.get("fidelity", {}))}
        )
        row["paper"] = None if cell is None else {
            "row": cell[0],
            "closed_set_accuracy": None if cell[1][0] is None else round(cell[1][0] / 100, 6),
            "auroc": round(cell[1][1] / 100, 6),
            "differs": differs,
        }  # fmt: skip
        vaze = vaze_mls_auroc(row["dataset"], row["method"], row["score"])
        row["paper_vaze_mls_auroc"] = None if vaze is None else round(vaze / 100, 6)
    return rows


def _protocol(cfg: dict[str, Any]) -> TrainConfig | None:
    """What a run's config trains, its split left out; None for a config this version cannot read."""
    if not cfg:
        return None
    try:
        config = TrainConfig.from_dict(cfg)
    except (DifairError, TypeError, ValueError, KeyError):
        return None
    config.data.split = 0
    return config


def check_one_protocol(out: Path, runs: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
    """Refuse to table runs that one row would average although they were trained otherwise (another lr, another
    preset: runs added with ``run_one`` or copied in), naming the first option that differs."""
    groups: dict[tuple[Any, ...], list[TrainConfig]] = {}
    for results, cfg in runs:
        ck = checkpoint_of(results)
        key = (results["dataset"], results["method"], results.get("seed"), ck["epoch"], ck["epochs"])
        proto = _protocol(cfg)
        if proto is not None:
            groups.setdefault(key, []).append(proto)
    for (dataset, method, *_), protos in groups.items():
        diff = next((d for p in protos[1:] if (d := protos[0].difference(p))), None)
        if diff:
            raise DifairError(
                f"{out / 'runs'} holds {method} runs on {dataset} trained otherwise ({diff}), which one table row "
                "would average: move one set of runs to another folder"
            )


def _dig(cfg: dict[str, Any], dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _values(items: list[Any]) -> str:
    seen: list[str] = []
    for v in items:
        s = str(v).lower() if isinstance(v, bool) else str(v)
        if s not in seen:
            seen.append(s)
    return " | ".join(seen)


def header_info(runs: list[tuple[dict[str, Any], dict[str, Any]]], manifest: dict[str, Any] | None) -> dict:
    """The budget, data, options and provenance that the table header states."""
    results = [r for r, _ in runs]
    epochs = sorted({r["epochs"] for r in results})
    fidelity_keys = list(results[0].get("fidelity", {})) if results else []
    return {
        "epochs": epochs,
        "paper_epochs": PAPER_EPOCHS,
        "proxy": any(e < PAPER_EPOCHS for e in epochs),
        "partial_runs": sorted(
            f"{r['method']}-{r['dataset']}-split{r['split']}-seed{r['seed']}: {epochs_label(r['checkpoint'])}"
            for r in results
            if not r["checkpoint"]["complete"]
        ),
        "datasets": sorted({r["dataset"] for r in results}),
        "methods": sorted({r["method"] for r in results}),
        "splits": sorted({r["split"] for r in results}),
        "seeds": sorted({r["seed"] for r in results}),
        "overrides": (manifest or {}).get("overrides"),
        "sources": (manifest or {}).get("sources"),
        "settings": {k: _values([_dig(c, k) for _, c in runs]) for k in SETTINGS},
        "fidelity": {k: _values([r.get("fidelity", {}).get(k) for r in results]) for k in fidelity_keys},
        "paper": PAPER_SOURCE,
    }


def _paper(row: dict[str, Any]) -> str:
    p = row["paper"]
    text = "" if p is None else f"{p['row']}: {pct(p['closed_set_accuracy'])} / {pct(p['auroc'])}"
    if p is not None and p.get("differs"):
        text += " †"  # from another setting: the note below the table says which
    if row["paper_vaze_mls_auroc"] is not None:
        text += f"; MLS [Vaze]: - / {pct(row['paper_vaze_mls_auroc'])}"
    return text or "-"


def to_markdown(
    info: dict[str, Any], rows: list[dict[str, Any]], subsets: list[dict[str, Any]] | None = None
) -> str:
    """The header (budget, options, provenance), one table row per dataset, method and score, and where runs
    report unknown subsets (``subset_rows``) a second table of each row's metrics per subset."""
    epochs = ", ".join(map(str, info["epochs"]))
    lines = [f"# difair benchmark: {', '.join(info['datasets'])}", ""]
    budget = f"**Budget: {epochs} epochs per run** (the paper: {info['paper_epochs']})."
    if info["proxy"]:
        budget += " A reduced-budget proxy: not a reproduction of the paper's numbers."
    if info["partial_runs"]:
        budget += (
            f" **{len(info['partial_runs'])} run(s) unfinished** ({'; '.join(info['partial_runs'])}): their rows"
            " say `partial` under Epochs and are not results of this budget (difair benchmark resumes them)."
        )
    lines += [budget, ""]
    seeds = ",".join(map(str, info["seeds"]))
    lines.append(
        f"Methods {', '.join(info['methods'])}; splits {','.join(map(str, info['splits']))}; seed {seeds}."
    )
    if info["sources"]:
        srcs = sorted(set(info["sources"].values()))
        lines.append(f"Settings: {'; '.join(srcs)}.")
    if info["overrides"]:
        lines.append(f"Overrides (--set): `{' '.join(info['overrides'])}`.")
    lines.append("Run settings: " + ", ".join(f"{k}={v}" for k, v in info["settings"].items()) + ".")
    lines.append(
        "Fidelity options (docs/fidelity.md): "
        + ", ".join(f"{k}={v}" for k, v in info["fidelity"].items())
        + "."
    )
    lines += [
        "",
        "Ours: mean ± population std over splits, in percent; in bold the best AUROC of each method. Epochs: the "
        "epoch of epochs the runs' checkpoints hold. Paper: "
        "acc / AUROC from " + info["paper"] + ".",
        "",
    ]
    subsets = subsets or []
    seeds = several_seeds([*rows, *subsets])
    head = ["Dataset", "Method", "Score", *(["Seed"] if seeds else []), "Runs", "Epochs", "Acc (%)", "AUROC (%)",
            "OSCR (%)", "Paper (Table 1) acc / AUROC"]  # fmt: skip
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    best: dict[tuple[str, str, Any], float] = {}
    for r in rows:
        if r.get("auroc") and r["checkpoint"]["complete"]:
            key = (r["dataset"], r["method"], r["seed"])
            best[key] = max(best.get(key, -1.0), r["auroc"]["mean"])
    for r in rows:
        cells = [
            r["dataset"],
            r["method"],
            r["score"],
            *([str(r["seed"])] if seeds else []),
            str(r["n_runs"]),
            epochs_label(r["checkpoint"]),
            *(mean_std(r, m) for m in OURS),
            _paper(r),
        ]
        if r.get("auroc") and r["auroc"]["mean"] == best.get((r["dataset"], r["method"], r["seed"])):
            at = head.index("AUROC (%)")
            cells[at] = f"**{cells[at]}**"  # the method's best score on this dataset (finished runs only)
        lines.append("| " + " | ".join(cells) + " |")
    notes = sorted({d for r in rows if r["paper"] for d in r["paper"].get("differs", [])})
    if notes:
        lines += [
            "",
            "† The paper's number comes from another setting than these runs': " + "; ".join(notes) + ".",
        ]
    if subsets:
        lines += ["", *subset_markdown(subsets, seeds)]
    return "\n".join(lines) + "\n"


def to_csv(rows: list[dict[str, Any]]) -> str:
    """One line per row, in percent: our mean and std per metric, then the paper's numbers (empty if none)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    cols = [f"{SHORT[m]}_{s}_pct" for m in OURS for s in ("mean", "std")]
    w.writerow(["dataset", "method", "score", "seed", "n_runs", "splits", *cols,
                "paper_row", "paper_acc_pct", "paper_auroc_pct", "paper_vaze_mls_auroc_pct", "paper_setting_differs",
                "checkpoint_epoch", "epochs", "complete"])  # fmt: skip
    for r in rows:
        ours = [csv_pct(r[m][s]) if m in r else "" for m in OURS for s in ("mean", "std")]
        p = r["paper"] or {}
        paper = [p.get("row", ""), csv_pct(p.get("closed_set_accuracy")), csv_pct(p.get("auroc"))]
        splits = " ".join(map(str, r["splits"]))
        ck = r["checkpoint"]
        w.writerow([r["dataset"], r["method"], r["score"], r["seed"], r["n_runs"], splits, *ours, *paper,
                    csv_pct(r["paper_vaze_mls_auroc"]), "; ".join(p.get("differs", [])), ck["epoch"], ck["epochs"],
                    str(ck["complete"]).lower()])  # fmt: skip
    return buf.getvalue()


def write_tables(out: str | Path) -> list[dict[str, Any]]:
    """Build ``table.md``, ``table.csv`` and ``table.json`` in ``out`` from its runs (and ``table_subsets.csv``
    where they report unknown subsets); returns the rows."""
    out = Path(out)
    runs = collect_runs(out)
    if not runs:
        raise DifairError(f"no finished runs under {out / 'runs'}: run difair benchmark --out {out} first")
    check_one_protocol(out, runs)
    rows = table_rows([r for r, _ in runs])
    subsets = subset_rows([r for r, _ in runs])
    info = header_info(runs, read_manifest(out))
    R.atomic_write_text(out / "table.md", to_markdown(info, rows, subsets))
    R.atomic_write_text(out / "table.csv", to_csv(rows))
    if subsets:
        R.atomic_write_text(out / SUBSET_CSV, subsets_csv(subsets))
    tables = {"benchmark": info, "rows": rows, **({"subsets": subsets} if subsets else {})}
    R.atomic_write_text(out / "table.json", json.dumps(tables, indent=2) + "\n")
    return rows
