"""Every post-hoc score on a DIFAIR, a CE and a CAC run, through ``difair.eval.evaluate``: the table of docs/scores.md.

    python benchmarks/posthoc_scores.py --runs runs/posthoc [--dataset digits] [--epochs 10] [--out table.md]
    python benchmarks/posthoc_scores.py --bench BENCH_OUT [--out table.md]

``--bench``: the runs of a ``difair benchmark --scores all`` grid instead, read from their ``results.json`` (nothing
trained or scored again): per dataset, method and score the mean +- population std over the runs of accuracy, AUROC,
OSCR and FPR95, and the mean fit and score time of each score.

Trains one run per method (skipped when its ``results.json`` exists) and scores it with
``difair.engine.posthoc.score_table`` (what ``difair eval RUN --scores`` runs): the backbone maps once per set
(train, known test, unknown test, cached in RUN/features/), each method's FeatureSet through
``Method.feature_set`` (DIFAIR: minus the anchor distances as logits, z, class sums, pooled maps, the maps and head
for ReAct/ASH; CE and CAC: logits, pooled features, the linear head, ODIN's perturbed logits), every score fitted on
the training images only. Prints one row per method and score,
the best AUROC per method in bold, and the scores each method cannot serve.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict
from pathlib import Path

import torch

from difair.config import TrainConfig, apply_overrides
from difair.engine import fit
from difair.engine import rundir as R
from difair.engine.posthoc import score_table
from difair.eval import ScoreTable

METRICS = ("auroc", "oscr", "fpr95")


def score_run(run_dir: str | Path, scores: str = "all") -> ScoreTable:
    """Every score on the run in ``run_dir``: fitted on its training images, evaluated on its test split (the code
    of ``difair eval RUN --scores``, without writing results.json)."""
    return score_table(run_dir, scores, device="cpu")[0]


def bench_table(bench: str | Path) -> str:
    """The markdown table of every score of the runs of a benchmark grid, aggregated over splits and seeds."""
    cells: dict[tuple[str, str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    own: dict[tuple[str, str], str] = {}
    for path in sorted(Path(bench).glob("runs/*/" + R.RESULTS)):
        res = json.loads(path.read_text())
        if not res.get("checkpoint", {}).get("complete", True):
            continue  # partial runs are never averaged with finished ones
        timing = res.get("posthoc", {}).get("timing_s", {})
        own[(res["dataset"], res["method"])] = res["score"]
        for score, m in res["scores"].items():
            c = cells[(res["dataset"], res["method"], score)]
            for k in ("closed_set_accuracy", *METRICS):
                c[k].append(m[k])
            for k in ("fit", "score"):
                c[k].append(timing.get(score, {}).get(k, 0.0))  # the method's own scores cost nothing extra
    best = {}
    for (d, m, score), c in cells.items():
        if best.get((d, m)) is None or statistics.mean(c["auroc"]) > statistics.mean(
            cells[(d, m, best[(d, m)])]["auroc"]
        ):
            best[(d, m)] = score
    lines = [
        "| dataset | method | score | runs | acc | AUROC | OSCR | FPR95 | fit s | score s |",
        "|---" * 10 + "|",
    ]

    def pm(v: list[float]) -> str:
        return f"{100 * statistics.mean(v):.2f} ± {100 * statistics.pstdev(v):.2f}"

    for (d, m, score), c in cells.items():
        name = f"**{score}**" if best[(d, m)] == score else score
        name += " (own)" if own.get((d, m)) == score else ""
        row = [d, m, name, str(len(c["auroc"])), pm(c["closed_set_accuracy"]), pm(c["auroc"]), pm(c["oscr"])]
        row += [pm(c["fpr95"]), f"{statistics.mean(c['fit']):.3f}", f"{statistics.mean(c['score']):.3f}"]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", default="runs/posthoc")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--methods", default="difair,ce,cac")
    p.add_argument("--out", default=None, help="also write the markdown table here")
    p.add_argument(
        "--bench", default=None, help="aggregate the runs of a `difair benchmark --scores` grid instead"
    )
    a = p.parse_args()
    if a.bench:
        text = bench_table(a.bench)
        print(text)
        if a.out:
            Path(a.out).write_text(text)
        return
    torch.set_num_threads(1)

    lines = [
        "| method | score | " + " | ".join(METRICS) + " | fit s | score s |",
        "|---" * (len(METRICS) + 4) + "|",
    ]
    notes = []
    for m in a.methods.split(","):
        run_dir = Path(a.runs) / f"{m}-{a.dataset}"
        if not (run_dir / R.RESULTS).is_file():
            over = [f"data.name={a.dataset}", f"method={m}", f"epochs={a.epochs}", "optim.lr=0.1"]
            fit(TrainConfig.from_dict(apply_overrides(TrainConfig().to_dict(), over)), run_dir)
        t = time.perf_counter()
        table = score_run(run_dir)
        best = table.best("auroc")
        for r in table.rows:
            name = f"**{r['score']}**" if r["score"] == best else r["score"]
            cells = [f"{100 * r[k]:.1f}" for k in METRICS] + [f"{r['fit_s']:.2f}", f"{r['score_s']:.2f}"]
            lines.append(f"| {m} | {name} | " + " | ".join(cells) + " |")
        acc = table.rows[0]["closed_set_accuracy"]
        notes.append(
            f"- {m}: closed-set accuracy {100 * acc:.1f}%, {table.meta['n_fit']} fit / {table.meta['n_known']} known / "
            f"{table.meta['n_unknown']} unknown images, {time.perf_counter() - t:.1f} s in all; not applicable: "
            + ("; ".join(f"`{k}` ({v})" for k, v in table.skipped.items()) or "none")
        )
    text = "\n".join(lines + [""] + notes) + "\n"
    print(text)
    if a.out:
        Path(a.out).write_text(text)


if __name__ == "__main__":
    main()
