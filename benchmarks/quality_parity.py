"""Quality parity: does the fast path learn what the reference-style settings learn? An MNIST proxy, 3 seeds.

    python benchmarks/quality_parity.py --out parity [--modes reference fast] [--seeds 0 1 2] [--threads 1]

Trains DIFAIR on MNIST split 0 at 32x32 with a reduced budget (``PROXY``) once per seed in each mode, through
``difair.engine.fit`` (finished runs in ``OUT/<mode>-seed<k>`` are reused), then prints a table of the mean
and seed-to-seed standard deviation of AUROC and closed-set accuracy, and whether the mean differences are
smaller than the spread. Modes differ only in execution settings:

- reference: fp32, NCHW, per-image torchvision RandAugment, single-tensor SGD;
- fast: `FAST_PATH` (precision and channels_last `auto`, batched RandAugment, foreach SGD, the fast dropout mask,
  glibc keeping freed blocks).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from difair.config import FAST_PATH, TrainConfig, apply_overrides
from difair.engine.build import load_data
from difair.engine.runner import run_or_resume

PROXY = [
    "method=difair",
    "data.name=mnist",
    "data.split=0",
    "data.image_size=32",
    "model.width=0.25",
    "epochs=2",
    "schedule.warmup_epochs=0",
    "schedule.restarts=0",
    "augment.randaugment_n=1",
    "augment.randaugment_m=6",
    "augment.hflip=false",
    "accelerator=cpu",
]
MODES = {
    "reference": [
        "precision=32-true",
        "channels_last=false",
        "augment.backend=torchvision",
        "optim.foreach=false",
    ],
    "fast": list(FAST_PATH),  # what --fast sets
}


def config(mode: str, seed: int, extra: list[str]) -> TrainConfig:
    over = [*PROXY, *MODES[mode], f"seed={seed}", *extra]
    return TrainConfig.from_dict(apply_overrides(TrainConfig().to_dict(), over))


def summarize(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean and sample standard deviation of AUROC and accuracy per mode."""
    out: dict[str, dict[str, float]] = {}
    for mode in dict.fromkeys(r["mode"] for r in rows):
        rs = [r for r in rows if r["mode"] == mode]
        for key in ("auroc", "closed_set_accuracy"):
            vals = [r[key] for r in rs]
            out.setdefault(mode, {})[key] = statistics.fmean(vals)
            out[mode][key + "_std"] = statistics.stdev(vals) if len(vals) > 1 else float("nan")
        out[mode]["train_time_s"] = statistics.fmean(r["train_time_s"] for r in rs)
    return out


def table(rows: list[dict[str, Any]]) -> str:
    s = summarize(rows)
    lines = [
        "| mode | seeds | AUROC (%) mean ± std | accuracy (%) mean ± std | train s/run |",
        "|---|---|---|---|---|",
    ]
    for mode, m in s.items():
        n = sum(r["mode"] == mode for r in rows)
        lines.append(
            f"| {mode} | {n} | {100 * m['auroc']:.2f} ± {100 * m['auroc_std']:.2f} | "
            f"{100 * m['closed_set_accuracy']:.2f} ± {100 * m['closed_set_accuracy_std']:.2f} | "
            f"{m['train_time_s']:.0f} |"
        )
    if {"reference", "fast"} <= set(s):
        a, b = s["reference"], s["fast"]
        for key in ("auroc", "closed_set_accuracy"):
            diff = abs(a[key] - b[key])
            spread = max(a[key + "_std"], b[key + "_std"])
            verdict = "smaller" if diff < spread else "NOT smaller"
            lines.append(
                f"\n{key}: |mean difference| {100 * diff:.2f} points, {verdict} than the seed spread "
                f"(larger std {100 * spread:.2f})"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: leave)")
    p.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--report-only", action="store_true", help="table of the runs already in --out")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows: list[dict[str, Any]] = []
    data = None
    for mode in args.modes:
        for seed in args.seeds:
            run_dir = args.out / f"{mode}-seed{seed}"
            if args.report_only:
                if not (run_dir / "results.json").is_file():
                    continue
                res = json.loads((run_dir / "results.json").read_text())
            else:
                cfg = config(mode, seed, args.extra)
                data = data or load_data(cfg.resolve(), None)
                t0 = time.perf_counter()
                res, how = run_or_resume(cfg, run_dir, data=data, show_progress=False)
                print(f"{run_dir.name}: {how} in {time.perf_counter() - t0:.0f} s, AUROC {100 * res['auroc']:.2f} "
                      f"acc {100 * res['closed_set_accuracy']:.2f}", flush=True)  # fmt: skip
            rows.append({"mode": mode, "seed": seed, **{k: res[k] for k in ("auroc", "closed_set_accuracy")},
                         "train_time_s": res.get("train_time_s") or 0.0})  # fmt: skip
    print(table(rows))


if __name__ == "__main__":
    main()
