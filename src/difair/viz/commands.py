"""CLI plugin: ``difair predict``, ``explain``, ``report``, ``plot`` and ``calibrate`` (argument parsing only)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from difair.cliutil import KEEP_HELP, count, finite_float, positive
from difair.errors import DifairError
from difair.viz.kinds import PLOT_KINDS, TOP_K, TSNE_POINTS


def _common(p: argparse.ArgumentParser, threshold: bool = True) -> None:
    if threshold:
        p.add_argument("--threshold", type=finite_float, help="score threshold (default: the calibrated one)")
    p.add_argument("--score", help="score to threshold (default: the method's, e.g. min_distance)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="classify images with rejection (class or 'unknown')")
    p.add_argument("run_dir", type=Path)
    p.add_argument("images", nargs="+", help="image files and/or folders of images")
    p.add_argument(
        "--out", type=Path, help="write every column (distances/probabilities per class) to a CSV file"
    )
    _common(p)
    p.set_defaults(func=cmd_predict, evaluates=True)

    p = sub.add_parser("calibrate", help="calibrate and store the rejection threshold of a run")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--keep", type=float, help=KEEP_HELP)
    p.add_argument(
        "--on",
        choices=("auto", "val", "test"),
        default="auto",
        help="calibration images: the held-out validation set (data.val_fraction) or the known test images "
        "(auto: val when the run has one)",
    )
    _common(p, threshold=False)
    p.set_defaults(func=cmd_calibrate, evaluates=True)

    p = sub.add_parser("explain", help="image card and activation maps of one image (DIFAIR runs)")
    p.add_argument("run_dir", type=Path)
    p.add_argument("image", type=Path)
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--label", help="the image's true class name, if known")
    p.add_argument("--class", dest="classes", action="append", help="class whose maps to draw (repeatable)")
    p.add_argument(
        "--top-k", type=positive, default=TOP_K, help=f"classes shown in the card's z (default {TOP_K})"
    )
    p.add_argument(
        "--hinton", action="store_true", help="Hinton squares (area = activation) instead of numbers"
    )
    _common(p)
    p.set_defaults(func=cmd_explain, evaluates=True)

    p = sub.add_parser("report", help="one self-contained HTML report of a run")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--out", type=Path, help="HTML file (default: RUN_DIR/report.html)")
    p.add_argument("--samples", type=count, default=2, help="cards per kind of sample (default 2)")
    p.add_argument("--no-tsne", action="store_true", help="leave out the t-SNE (the slowest figure)")
    p.add_argument(
        "--max-points", type=positive, default=TSNE_POINTS, help=f"t-SNE sample size (default {TSNE_POINTS})"
    )
    _common(p)
    p.set_defaults(func=cmd_report, evaluates=True)

    p = sub.add_parser("plot", help="draw one analysis of a run into a PNG, PDF or SVG file")
    p.add_argument("run_dir", type=Path)
    p.add_argument("kind", choices=PLOT_KINDS, metavar="KIND", help=", ".join(PLOT_KINDS))
    p.add_argument("--out", type=Path, required=True, help="FILE.png, FILE.pdf or FILE.svg")
    p.add_argument("--index", type=int, help="card / activation-maps: test image index")
    p.add_argument("--image", type=Path, help="card / activation-maps: an image file instead")
    p.add_argument("--label", help="card of --image: its true class")
    p.add_argument("--class", dest="classes", action="append", help="activation-maps: class (repeatable)")
    p.add_argument(
        "--split", choices=("train", "test"), help="mean-representations (train) / similarity (test)"
    )
    p.add_argument(
        "--all-samples", action="store_true", help="means over all samples, not only the correct ones"
    )
    p.add_argument(
        "--top-k", type=positive, default=TOP_K, help=f"classes shown in the card's z (default {TOP_K})"
    )
    p.add_argument(
        "--hinton", action="store_true", help="card: Hinton squares (area = activation) instead of numbers"
    )
    p.add_argument(
        "--max-points", type=positive, default=TSNE_POINTS, help=f"tsne: sample size (default {TSNE_POINTS})"
    )
    p.add_argument("--label-unknowns", action="store_true", help="tsne: colour unknowns by source class")
    _common(p)
    p.set_defaults(func=cmd_plot, evaluates=True)


def cmd_predict(args: argparse.Namespace) -> int:
    from difair.engine.rundir import check_writable  # start-up time: the parser imports this module
    from difair.predict import Predictor, expand_inputs  # start-up time: the parser imports this module

    for item in args.images:
        if Path(item).is_dir() and not expand_inputs([item]):
            print(f"difair: no image files in folder {item}", file=sys.stderr)
    if not any(Path(p).exists() or Path(p).is_symlink() for p in expand_inputs(list(args.images))):
        # before the run is loaded (and calibrated, which writes threshold.json)
        raise DifairError(f"no image file at {' '.join(args.images)}: check the paths")
    if args.out:
        check_writable(args.out)
    pr = Predictor(args.run_dir, threshold=args.threshold, score=args.score, device=args.device)
    if pr.score_note:
        print(f"difair: note: {pr.score_note}", file=sys.stderr)
    if pr.calibrated_now:
        print(f"difair: {pr.calibration_note()}", file=sys.stderr)
    res = pr.predict(list(args.images), on_error="skip")
    for name, why in res.skipped:
        print(f"difair: skipped {name}: {why}", file=sys.stderr)
    if not len(res):
        raise DifairError("none of the inputs could be read as an image: check the paths")
    width = max(len(n) for n in res.names)
    print(f"{'image':<{width}}  {'prediction':<14} {res.score_name:>12}  accepted")
    for row in res.rows():
        print(
            f"{row['path']:<{width}}  {row['prediction']:<14} {row['score']:>12.4f}  {'yes' if row['accepted'] else 'no'}"
        )
    if args.out:
        res.write_csv(args.out)
        print(f"wrote {len(res)} row{'s' * (len(res) != 1)} to {args.out}", file=sys.stderr)
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from difair.predict import calibrate  # start-up time: the parser imports this module

    rec = calibrate(args.run_dir, args.keep, score=args.score, device=args.device, on=args.on)
    unk = rec["unknown_accepted"]
    print(
        f"threshold {rec['threshold']:.4f} on {rec['score']}, calibrated on {rec['calibrated_on']}: accepts "
        f"{rec['known_accepted']:.1%} of known and {unk:.1%} of unknown test images; "
        f"stored in {args.run_dir}/threshold.json"
    )
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from difair.engine.rundir import check_writable  # start-up time: the parser imports this module
    from difair.viz.explain import explain_image  # start-up time: the parser imports this module

    if not args.image.is_file():
        raise DifairError(f"no image file {args.image}")
    if args.out.exists() and not args.out.is_dir():
        raise DifairError(f"--out {args.out} is a file: name a folder for card.png and activation_maps.png")
    check_writable(args.out / "card.png")  # before the outputs are computed (and kept in the run folder)
    res = explain_image(
        args.run_dir, args.image, args.out, label=args.label, classes=args.classes, threshold=args.threshold,
        score=args.score, top_k=args.top_k, hinton=args.hinton, device=args.device,
    )  # fmt: skip
    for note in res["notes"]:
        print(f"difair: {note}", file=sys.stderr)
    print(
        f"{args.image}: {res['prediction']} ({res['score_name']} {res['score']:.4f}); wrote {res['card']}, {res['activation_maps']}"
    )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from difair.engine.rundir import REPORT, check_writable  # start-up time: the parser imports this module
    from difair.viz.report import write_report

    if args.out is not None and args.out.suffix.lower() not in (".html", ".htm"):
        raise DifairError(
            f"--out must end in .html (or .htm): the report is one HTML file, got {args.out.name!r}"
        )
    out = args.out or args.run_dir / REPORT
    try:
        check_writable(out)  # before the outputs are computed
    except DifairError as exc:
        if args.out is not None:
            raise
        raise DifairError(
            f"{exc} (the report goes into the run folder unless --out PATH.html says where)"
        ) from exc
    path = write_report(
        args.run_dir, args.out, score=args.score, threshold=args.threshold, device=args.device,
        samples_per_kind=args.samples, tsne=not args.no_tsne, tsne_points=args.max_points,
    )  # fmt: skip
    print(f"wrote {path}")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from difair.engine.rundir import check_writable  # start-up time: the parser imports this module
    from difair.viz.plots import make_plot  # start-up time: the parser imports this module
    from difair.viz.style import FORMATS, save_figure

    if args.out.suffix.lower().lstrip(".") not in FORMATS:
        raise DifairError(f"--out must end in .png, .pdf or .svg, got {args.out.name!r}")
    check_writable(args.out)  # before the outputs are computed
    save_figure(make_plot(args), args.out)
    print(f"wrote {args.out}")
    return 0
