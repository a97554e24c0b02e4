"""Every post-hoc score on a DIFAIR, a CE and a CAC run, through ``difair.eval.evaluate``: the table of docs/scores.md.

    python benchmarks/posthoc_scores.py --runs runs/posthoc [--dataset digits] [--epochs 10] [--out table.md]

Trains one run per method (skipped when its ``results.json`` exists), extracts the backbone maps once per set
(train, known test, unknown test), builds each method's FeatureSet (DIFAIR: minus the anchor distances as logits,
z, class sums, pooled maps, the maps and head for ReAct/ASH; CE and CAC: logits, pooled features, the linear head,
ODIN's perturbed logits) and fits every score on the training images only. Prints one row per method and score,
the best AUROC per method in bold, and the scores each method cannot serve.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from difair.config import TrainConfig, apply_overrides
from difair.data import get_dataset
from difair.engine import fit
from difair.engine import rundir as R
from difair.engine.load import load_run
from difair.eval import ScoreTable, evaluate
from difair.eval.posthoc import FeatureSet, difair_feature_set, logit_feature_set, odin_logits

METRICS = ("auroc", "oscr", "fpr95")


def _batched(fn, x: torch.Tensor, bs: int = 256) -> torch.Tensor:
    return torch.cat([fn(x[i : i + bs]) for i in range(0, len(x), bs)])


def extractor(run):
    """``(images, labels) -> FeatureSet`` for a loaded run (eval mode, CPU)."""
    model, method, cfg, head = run.model.eval(), run.method, run.config, run.model.head

    def extract(data: tuple[torch.Tensor, torch.Tensor]) -> FeatureSet:
        x, y = data
        with torch.no_grad():
            maps = _batched(model.feature_map, x)
            out = head(maps).float()
        if cfg.method == "difair":
            n = cfg.difair.features_per_class
            return difair_feature_set(
                out, y, method.anchors(head), n, maps.mean((2, 3)), maps=maps, head=head
            )
        fs = logit_feature_set(
            out,
            y,
            head.pooled(maps),
            preds=method.predict(out, head),
            head=head.fc,
            linear=(head.fc.weight, None),
        )
        fs.features["odin"] = _batched(lambda b: odin_logits(model, b.float() / 255), x)
        return fs

    return extract


def score_run(run_dir: str | Path, scores: str = "all") -> ScoreTable:
    """Every score on the run in ``run_dir``: fitted on its training images, evaluated on its test split."""
    run = load_run(run_dir)
    data = get_dataset(run.config.data)
    if run.method.needs_train_outputs(run.model.head):  # CAC: anchors on the class means, as the engine does
        with torch.no_grad():
            train_out = _batched(run.model, data.train_images)
        run.method.prepare_evaluation(run.model.head, train_out, data.train_labels)
    known = data.test_labels >= 0
    return evaluate(
        extractor(run),
        (data.test_images[known], data.test_labels[known]),
        (data.test_images[~known], data.test_labels[~known]),
        fit_on=(data.train_images, data.train_labels),
        scores=scores,
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", default="runs/posthoc")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--methods", default="difair,ce,cac")
    p.add_argument("--out", default=None, help="also write the markdown table here")
    a = p.parse_args()
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
