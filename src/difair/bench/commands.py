"""CLI plugin: ``difair benchmark`` (run a grid, write tables) and ``difair presets`` (list, show)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from difair.cliutil import (
    add_config_flags,
    check_dataset_name,
    dataset_help,
    flag_overrides,
    method_help,
    parse_methods,
    parse_names,
    parse_splits,
    positive,
)
from difair.errors import DifairError


def _cmd_benchmark(args: argparse.Namespace) -> int:
    from rich.console import Console

    # start-up time: the library (torch) is imported by the command that needs it, not by the parser
    from difair.bench.grid import check_overrides, make_grid
    from difair.bench.report import finished_runs, write_tables

    console = Console(stderr=True)
    if args.report_only is not None:
        if args.out is not None and Path(args.out) != Path(args.report_only):
            raise DifairError("--report-only DIR takes the benchmark folder itself: leave out --out")
        rows = write_tables(args.report_only)
        console.print(f"tables rebuilt from {len(rows)} rows in {args.report_only}", markup=False)
        return 0
    if args.out is None or args.datasets is None:
        raise DifairError("difair benchmark needs --datasets and --out (or --report-only DIR)")
    if args.scores:
        from difair.eval.posthoc import resolve_scores  # start-up time: the parser imports this module

        resolve_scores(args.scores)  # an unknown name fails before any run
    methods = parse_methods(args.methods)
    datasets = parse_names(args.datasets, "datasets")
    for d in datasets:
        check_dataset_name(d)
    if args.epochs is not None and args.epochs < 1:
        raise DifairError(f"--epochs must be >= 1, got {args.epochs}")
    args.overrides = flag_overrides(args.fast, args.authors_code, args.overrides)
    check_overrides(args.overrides)
    if any(
        o.replace(" ", "").startswith("devices=") and o.split("=", 1)[1].strip() != "1"
        for o in args.overrides
    ):
        raise DifairError(
            "difair benchmark runs one process per run: use --ray to run runs in parallel, "
            "or difair train --devices N for one run on several devices"
        )
    from difair.bench.runner import run_grid  # start-up time: the parser imports this module

    specs = make_grid(methods, datasets, parse_splits(args.splits) if args.splits else None, args.seed)
    if args.ray is not None:
        # start-up time: the parser imports this module
        from difair.bench.ray_backend import run_benchmark_ray

        run_benchmark_ray(args.out, specs, epochs=args.epochs, overrides=args.overrides, address=args.ray or None,
                          gpus_per_run=args.gpus_per_run, cpus_per_run=args.cpus_per_run, console=console)  # fmt: skip
    else:
        run_grid(args.out, specs, epochs=args.epochs, overrides=args.overrides, show_progress=not args.quiet,
                 console=console)  # fmt: skip
    if args.scores:
        from difair.engine.posthoc import score_run_dir  # start-up time: the parser imports this module

        runs = finished_runs(Path(args.out))
        for i, run_dir in enumerate(runs, 1):
            console.print(f"post-hoc scores {i}/{len(runs)}: {run_dir.name}", markup=False)
            score_run_dir(run_dir, args.scores)
        write_tables(args.out)
    sys.stdout.write((Path(args.out) / "table.md").read_text())
    return 0


def _cmd_presets(args: argparse.Namespace) -> int:
    from difair.presets import (  # start-up time: the parser imports this module
        preset_dict,
        preset_names,
        preset_text,
    )

    if args.action == "list" and args.name:
        raise DifairError(
            f"difair presets list takes no name, got {args.name!r}: difair presets show {args.name}"
        )
    if args.action == "show":
        if not args.name:
            raise DifairError("difair presets show needs a NAME: see difair presets list")
        sys.stdout.write(preset_text(args.name))
        return 0
    lines = []
    for name in preset_names():
        d = preset_dict(name)
        aug = d.get("augment", {})
        ra = f"RandAugment N={aug.get('randaugment_n')} M={aug.get('randaugment_m')}"
        if not aug.get("randaugment_n"):
            ra = "no RandAugment"
        elif aug.get("randaugment_ops") == "no_geometric":
            ra += " (no rotate/translate)"
        jitter = [f"{k} {aug[k]}" for k in ("contrast", "brightness") if aug.get(k)]
        if jitter:
            ra += f", {' and '.join(jitter)} jitter"
        flip = "flip" if aug.get("hflip") else "no flip"
        lines.append(
            f"{name:<20} lr {d['optim']['lr']:<4} {d['epochs']} epochs, batch {d['batch_size']}, {ra}, {flip}"
        )
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "benchmark", help="run a (method x dataset x split) grid with the paper's presets, then write tables"
    )
    p.add_argument("--methods", default=None, help=method_help("comma-separated, default all: "))
    p.add_argument("--datasets", help=dataset_help("required unless --report-only; comma-separated: "))
    p.add_argument(
        "--splits",
        default=None,
        help="splits, e.g. 0-4 or 0,2 (default: every split of each dataset, one for the SSB)",
    )
    p.add_argument(
        "--out",
        type=Path,
        help="benchmark folder: runs/, table.md, table.csv, table.json (required unless --report-only)",
    )
    p.add_argument(
        "--epochs",
        type=positive,
        help="epochs per run (default: each preset's, 600 for the paper's; digits: the demo's); the schedule keeps "
        "its shape",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of every run (default 0)")
    add_config_flags(p, "override an option in every run, e.g. --set model.width=0.5")
    p.add_argument(
        "--report-only", type=Path, metavar="DIR", help="rebuild DIR's tables from its runs; no training"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--scores",
        default=None,
        metavar="all|NAME,...",
        help="also every post-hoc score named (docs/scores.md) on every run: one table row per method and score",
    )
    from difair.bench.ray_backend import add_ray_arguments  # start-up time: the parser imports this module

    add_ray_arguments(p)
    p.set_defaults(func=_cmd_benchmark)

    q = sub.add_parser("presets", help="list the paper's presets or print one (to copy and edit)")
    q.add_argument(
        "action", nargs="?", choices=("list", "show"), default="list", help="list (default) or show NAME"
    )
    q.add_argument("name", nargs="?", help="preset name for show, e.g. difair-cifar10")
    q.set_defaults(func=_cmd_presets)
