"""One markdown table of benchmark grids side by side: the table of docs/transfer.md.

    python benchmarks/transfer_table.py bench-transfer-tin-frozen bench-transfer-tin-ft ... [--out table.md]

Each argument is a ``difair benchmark --out`` folder. A row per finished run: dataset, backbone and how it was
trained (from scratch, frozen or fine-tuned; the image size and epochs), method, the method's own score with its
closed-set accuracy, AUROC and OSCR from ``results.json``, and the run's wall time (``timing.json``, training and
evaluation; the training time alone where the grid did not train the run itself). Unfinished runs are left out.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

HEADER = "| dataset | backbone | training | size | epochs | method | score | acc | AUROC | OSCR | wall s |"


def training_kind(model: dict) -> str:
    """From scratch, frozen or fine-tuned, as the run's resolved ``model`` section says."""
    if not (model.get("pretrained") or model.get("weights")):
        return "from scratch"
    if model.get("freeze_backbone"):
        return "frozen"
    scale = model.get("backbone_lr_scale", 1.0)
    return "fine-tuned" if scale == 1.0 else f"fine-tuned (backbone lr x{scale:g})"


def rows(bench: Path) -> list[str]:
    """The table rows of one grid folder, one per finished run."""
    timing_file = bench / "timing.json"
    timing = json.loads(timing_file.read_text()) if timing_file.is_file() else {}
    out = []
    for results_file in sorted((bench / "runs").glob("*/results.json")):
        run = results_file.parent
        r = json.loads(results_file.read_text())
        if not r.get("checkpoint", {}).get("complete", True):
            continue
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        model, data = cfg["model"], cfg["data"]
        t = timing.get(
            run.name, {}
        )  # a grid that reused the run timed only the reuse: take its training time
        wall = t["wall_s"] if t.get("how") == "trained" else r.get("train_time_s", 0.0)
        out.append(
            f"| {r['dataset']} | {model['backbone']} (width {model.get('width', 1.0):g}) | {training_kind(model)} "
            f"| {data.get('image_size') or 'native'} | {r['epochs']} | {r['method']} | {r['score']} "
            f"| {100 * r['closed_set_accuracy']:.2f} | {100 * r['auroc']:.2f} | {100 * r['oscr']:.2f} "
            f"| {wall:.0f} |"
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("benches", nargs="+", type=Path, help="difair benchmark --out folders")
    ap.add_argument("--out", type=Path, help="also write the table here")
    a = ap.parse_args()
    lines = [HEADER, "|" + "---|" * HEADER.count(" | ") + "---|"]
    for bench in a.benches:
        if not (bench / "runs").is_dir():
            raise SystemExit(
                f"{bench} is not a benchmark folder (no runs/): pass difair benchmark --out folders"
            )
        lines += rows(bench)
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if a.out:
        a.out.write_text(text)


if __name__ == "__main__":
    main()
