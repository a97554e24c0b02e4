"""CLI plugin: ``difair export`` (argument parsing only; the work is ``difair.deploy.export_run``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from difair.cliutil import KEEP_HELP, finite_float

FORMATS = ("onnx", "torchscript")  # difair.deploy.EXPORT_FORMATS, checked there (the parser stays torch-free)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="export a run for deployment (ONNX or TorchScript, threshold and classes)"
    )
    p.add_argument("run_dir", type=Path)
    p.add_argument("--format", dest="fmt", default="onnx", metavar="|".join(FORMATS), help="default: onnx")
    p.add_argument("--out", type=Path, required=True, help="output folder (new or empty)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier export in --out")
    p.add_argument(
        "--score",
        help="score to export (default: the method's own, or one that does not depend on the batch)",
    )
    p.add_argument("--threshold", type=finite_float, help="score threshold (default: the calibrated one)")
    p.add_argument("--keep", type=float, help=KEEP_HELP)
    p.add_argument("--device", default=None, help="device of a calibration, if one is needed (cpu, cuda)")
    p.set_defaults(func=cmd_export, evaluates=True)


def cmd_export(args: argparse.Namespace) -> int:
    from difair.deploy import MODEL_FILES, export_run  # start-up time: the parser imports this module

    rec = export_run(
        args.run_dir,
        args.out,
        args.fmt,
        overwrite=args.overwrite,
        score=args.score,
        threshold=args.threshold,
        keep=args.keep,
        device=args.device,
    )
    check = rec["self_check"]
    checked = (
        f"; checked at batch sizes {check['batch_sizes']}, score within {check['max_abs_diff']['score']:.1e}"
        if check
        else ""
    )
    print(
        f"wrote {args.out}/{MODEL_FILES[rec['format']]}, model.json and README.md ({rec['method']}, score "
        f"{rec['score_name']}, threshold {rec['threshold']:.4f}){checked}"
    )
    return 0
