"""Command line: argument parsing and error reporting only; the work lives in the library.

Every problem a user can fix prints one line on stderr (``difair: error: ...``) and exits with code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from pathlib import Path

from rich.console import Console

from difair.cliutil import (
    JOBS_HELP,
    add_config_flags,
    base_config,
    check_preset_flags,
    dataset_help,
    demo_epochs_help,
    evaluation_process,
    flag_overrides,
    interrupted_hint,
    layered_config,
    method_dataset_overrides,
    method_help,
    parse_splits,
    positive,
    preset_note,
    split_help,
    unfinished_note,
    unfinished_text,
    with_default,
)
from difair.cliutil.process import describe_error, one_line_warnings, sigterm_as_interrupt
from difair.errors import DatasetNotFound, DifairError, Terminated
from difair.version import __version__


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad usage as one line naming the fix, exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise DifairError(f"{message} (see: {self.prog} --help)")


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train one run (method, dataset, split) into a run folder")
    p.set_defaults(func=_cmd_train)
    p.add_argument("--method", choices=None, help=with_default(method_help(), "method"))
    p.add_argument("--dataset", help=with_default(dataset_help(), "data.name"))
    p.add_argument("--split", type=int, default=None, help=with_default(split_help(), "data.split"))
    p.add_argument("--preset", help="start from a paper preset, e.g. difair-cifar10 (difair presets list)")
    p.add_argument("--config", type=Path, help="a YAML config file (e.g. an edited preset) over --preset")
    p.add_argument(
        "--epochs",
        type=positive,
        help=with_default("number of epochs (the schedule keeps its shape)", "epochs"),
    )
    p.add_argument("--seed", type=int, help=with_default("seed of the run", "seed"))
    p.add_argument("--out", type=Path, help="run folder (default: runs/METHOD-DATASET-splitK-seedS)")
    add_config_flags(p, "override any option, e.g. --set optim.lr=0.1 --set difair.alpha=5")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue an interrupted run")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--devices", type=int, help="processes (GPUs, or CPU processes) training one run with DDP")
    # every other flag configures a new run, which --resume refuses: read from the parser, so a new flag counts
    resume_takes = {"help", "resume", "overwrite", "quiet", "devices"}
    configures = [(a.option_strings[-1], a.dest, a.default) for a in p._actions if a.dest not in resume_takes]
    p.set_defaults(configures=configures)


def _cmd_train(args: argparse.Namespace) -> int:
    # start-up time: the library (torch, Lightning) is imported by the command that needs it, not by the parser
    from difair.data.splits import check_split
    from difair.engine.ddp import is_rank_zero
    from difair.engine.fit import fit
    from difair.engine.rundir import CONFIG, run_name

    if args.resume is not None:
        if args.overwrite:
            raise DifairError("--resume and --overwrite exclude each other: choose one")
        given = [flag for flag, dest, default in args.configures if getattr(args, dest) not in (default, [])]
        if given:
            raise DifairError(
                f"--resume continues the run exactly as it was configured, so it takes no {given[0]} (only "
                "--devices and --quiet): drop it, or start a new run with --out"
            )
        args.training = args.resume  # named by the hint if the run is interrupted
        results = fit(None, args.resume, resume=True, show_progress=not args.quiet, devices=args.devices)
        if is_rank_zero():
            _print_results(results, args.resume)
        return 0
    check_preset_flags(args.preset, args.method, args.dataset)
    base = base_config(args.preset, args.config)  # layering: defaults < --preset < --config < --set and flags
    overrides = flag_overrides(args.fast, args.authors_code, args.overrides)
    overrides += method_dataset_overrides(args.method, args.dataset)
    if args.split is not None:
        check_split(args.split)
        overrides.append(f"data.split={args.split}")
    if args.epochs is not None:
        overrides.append(f"epochs={args.epochs}")
    if args.seed is not None:
        overrides.append(f"seed={args.seed}")
    if args.devices is not None:
        overrides.append(f"devices={args.devices}")
    cfg = layered_config(base, overrides)
    note = preset_note(cfg.method, cfg.data.name) if args.preset is None and args.config is None else None
    if note and not args.quiet:
        print(f"difair: note: {note}", file=sys.stderr)
    out = args.out or Path("runs") / run_name(cfg.method, cfg.data.name, cfg.data.split, cfg.seed)
    args.training = out  # named by the hint if the run is interrupted
    old_config = out / CONFIG
    args.replacing = old_config.stat().st_mtime_ns if args.overwrite and old_config.is_file() else None
    results = fit(cfg, out, overwrite=args.overwrite, show_progress=not args.quiet)
    if is_rank_zero():  # with --devices N the other ranks return the same results
        _print_results(results, out)
    return 0


def _print_results(results: dict, run_dir: Path) -> None:
    console = Console()
    ck = results.get("checkpoint") or {}
    partial = "" if ck.get("complete", True) else f" (partial: epoch {ck.get('epoch')} of {ck.get('epochs')})"
    console.print(
        f"[bold]{results['method']}[/] on {results['dataset']} split {results['split']} -> {run_dir}{partial}"
    )
    for name, m in results["scores"].items():
        mark = "*" if name == results["score"] else " "
        console.print(
            f" {mark} {name:<17} acc {100 * m['closed_set_accuracy']:6.2f}  AUROC {100 * m['auroc']:6.2f}  "
            f"OSCR {100 * m['oscr']:6.2f}  FPR95 {100 * m['fpr95']:6.2f}"
        )
    val = results.get("validation")
    if val:
        console.print(
            f"   validation        acc {100 * val['closed_set_accuracy']:6.2f}  ({val['n']} held-out images)"
        )


def _cmd_eval(args: argparse.Namespace) -> int:
    from difair.engine.evaluate import evaluate_run_dir  # start-up time
    from difair.engine.posthoc import score_run_dir
    from difair.eval.posthoc import resolve_scores

    if args.scores:
        resolve_scores(args.scores)  # an unknown name fails before the run is evaluated
    results = evaluate_run_dir(args.run_dir)
    ck = results["checkpoint"]
    if not ck["complete"]:
        note = unfinished_text(args.run_dir, ck, "results.json is marked partial")
        print(f"difair: note: {note}", file=sys.stderr)
    if args.scores:
        results = score_run_dir(args.run_dir, args.scores)
        skipped = results["posthoc"]["skipped"]
        if skipped:
            Console(stderr=True).print(
                "not applicable: " + "; ".join(f"{k} ({v})" for k, v in skipped.items()), markup=False
            )
    _print_results(results, args.run_dir)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    import time

    from difair.demo import DEMO_EPOCHS, run_demo  # start-up time
    from difair.eval.tables import to_markdown

    t0 = time.perf_counter()
    splits = parse_splits(args.splits)
    rows = run_demo(
        args.out,
        epochs=args.epochs or DEMO_EPOCHS,
        splits=splits,
        workers=args.jobs,
        show_progress=not args.quiet,
    )
    print(to_markdown(rows))
    print(
        f"demo finished in {time.perf_counter() - t0:.0f} s; tables written to {args.out}/table.md and table.json"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="difair", description="DIFAIR open-set recognition: train, evaluate, compare.")

    parser.add_argument("--version", action="version", version=f"difair {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of an error (or DIFAIR_DEBUG=1)"
    )
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")
    d = sub.add_parser("demo", help="offline demo: DIFAIR vs CE vs CAC on 5 digit splits")
    d.add_argument(
        "--out", type=Path, default=Path("difair-demo"), help="output folder (default: ./%(default)s)"
    )
    d.add_argument("--epochs", type=positive, default=None, help=demo_epochs_help())
    d.add_argument("--splits", default=None, help="splits to run, e.g. 0-4 or 0,2 (default: every split)")
    d.add_argument("--jobs", type=positive, default=None, help=JOBS_HELP)
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    d.set_defaults(func=_cmd_demo)
    _add_train(sub)
    e = sub.add_parser("eval", help="recompute results.json of a run from its checkpoint")
    e.add_argument("run_dir", type=Path)
    e.add_argument(
        "--scores",
        default=None,
        metavar="all|NAME,...",
        help="also every post-hoc score named (docs/scores.md), fitted on the training images only, "
        "added to results.json",
    )
    e.set_defaults(func=_cmd_eval, evaluates=True)
    for module in PLUGINS:
        importlib.import_module(module).register(sub)
    return parser


# Modules that add subcommands: each has ``register(sub)`` adding parsers with ``set_defaults(func=...)``;
# a command function takes the parsed namespace and returns the exit code.
PLUGINS: list[str] = [
    "difair.bench.commands",
    "difair.bench.hardware",
    "difair.viz.commands",
    "difair.deploy.commands",
]


def main(argv: list[str] | None = None) -> int:
    """The ``difair`` command: one line on stderr and exit code 2 for any error, a traceback only with ``--debug``
    (or ``DIFAIR_DEBUG=1``)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv or os.environ.get("DIFAIR_DEBUG", "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    parser = build_parser()
    args = None
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:  # named with the subcommand's help, where its options are listed
            where = f"difair {args.command}" if getattr(args, "command", None) else "difair"
            raise DifairError(f"unrecognized arguments: {' '.join(extra)} (see: {where} --help)")
        if args.command is None:
            parser.print_help()
            return 2
        if getattr(args, "evaluates", False):
            evaluation_process(getattr(args, "device", None))
            note = unfinished_note(args.run_dir) if args.command != "eval" else None  # eval says more
            if note:
                print(f"difair: note: {note}", file=sys.stderr)
        with sigterm_as_interrupt(), one_line_warnings():
            code = args.func(args)
        sys.stdout.flush()  # a reader that went away shows here, inside the handlers below
        return code
    except DifairError as exc:
        if debug:
            raise
        run_dir = (
            getattr(args, "run_dir", None)
            if getattr(args, "evaluates", False)
            else getattr(args, "resume", None)
        )
        if isinstance(exc, DatasetNotFound) and run_dir is not None:  # a run's options cannot be --set
            hint = ""
            if (
                getattr(args, "command", None) in ("predict", "explain")
                and getattr(args, "threshold", 1) is None
            ):
                hint = (
                    f"; {args.command} reads the data only to calibrate a threshold when none is stored: "
                    "--threshold T skips that (except for CAC runs with re-centred anchors)"
                )
            exc = DifairError(exc.for_run(run_dir) + hint)
        print(f"difair: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader of our output went away (difair ... | head): nothing to report
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141
    except Terminated:
        print(f"difair: terminated (SIGTERM){interrupted_hint(args)}", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print(f"difair: interrupted{interrupted_hint(args)}", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 (the one place that turns every failure into one line)
        if debug:
            raise
        print(f"difair: error: {describe_error(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["main", "build_parser", "describe_error"]
