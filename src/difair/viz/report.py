"""A run's self-contained HTML report: config, metrics, threshold, figures and sample cards, images inline.

Every image is a ``data:image/png;base64`` URI, so the file opens in a browser with no server and no network. A
small inline script writes, once the page has loaded, how many images decoded (``#image-status``), which the
tests read back from headless Chromium.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from difair.data.base import OSRData
from difair.engine import rundir as R
from difair.engine.load import LoadedRun, read_results
from difair.eval.metrics import osr_metrics
from difair.version import __version__
from difair.viz import cards, curves, embeddings, representations
from difair.viz.analysis import RunAnalysis, analyze
from difair.viz.kinds import TSNE_POINTS
from difair.viz.style import png_bytes

STATUS_SCRIPT = """
<script>
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (im) { return im.complete && im.naturalWidth > 0; }).length;
  var el = document.getElementById("image-status");
  el.setAttribute("data-total", String(imgs.length));
  el.setAttribute("data-loaded", String(ok));
  el.textContent = ok + " of " + imgs.length + " images loaded";
});
</script>
"""

CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, Roboto, sans-serif; margin: 2em auto; max-width: 1200px;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 1em 0; } td, th { border: 1px solid #ccc; padding: .3em .7em; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: .9em; } pre { background: #f7f7f7; padding: 1em; overflow-x: auto; }
.note { color: #666; font-size: .9em; } #image-status { color: #888; font-size: .8em; margin-top: 3em; }
"""

SAMPLE_KINDS = {
    "known": "known images, accepted",
    "unknown": "unknown images, rejected",
    "rejected": "known images wrongly rejected",
    "accepted_unknown": "unknown images wrongly accepted",
}


def img_tag(fig: Figure, alt: str, dpi: int = 90) -> str:
    """``<img>`` with the figure as an inline PNG data URI."""
    data = base64.b64encode(png_bytes(fig, dpi=dpi)).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def sample_indices(ra: RunAnalysis, per_kind: int = 2, seed: int = 0) -> dict[str, list[int]]:
    """Test indices of each kind in ``SAMPLE_KINDS`` (up to ``per_kind`` each, seeded draw)."""
    known = (ra.data.test_labels >= 0).numpy()
    acc = ra.accepted.numpy()
    masks = {
        "known": known & acc,
        "unknown": ~known & ~acc,
        "rejected": known & ~acc,
        "accepted_unknown": ~known & acc,
    }
    rng = np.random.default_rng(seed)
    out = {}
    for kind, m in masks.items():
        idx = np.flatnonzero(m)
        out[kind] = (
            sorted(int(i) for i in rng.choice(idx, min(per_kind, len(idx)), replace=False))
            if len(idx)
            else []
        )
    return out


def _metrics_table(ra: RunAnalysis) -> str:
    per_score = (read_results(ra.run.run_dir) or {}).get("scores")
    if not per_score:
        per_score = {k: osr_metrics(v, ra.test_preds, ra.data.test_labels) for k, v in ra.scores.items()}
    cols = [("closed_set_accuracy", "closed-set acc."), ("auroc", "AUROC"), ("oscr", "OSCR"), ("aupr_in", "AUPR-in"),
            ("aupr_out", "AUPR-out"), ("fpr95", "FPR@95%TPR")]  # fmt: skip
    head = "".join(f"<th>{c[1]}</th>" for c in cols)
    rows = []
    for name, m in per_score.items():
        mark = " (default)" if name == ra.method.default_score else ""
        cells = "".join(f"<td>{100 * m[k]:.2f}</td>" if k in m else "<td></td>" for k, _ in cols)
        rows.append(f"<tr><td>{html.escape(name)}{mark}</td>{cells}</tr>")
    return f"<table><tr><th>score</th>{head}</tr>{''.join(rows)}</table><p class='note'>Percentages on the test set.</p>"


def _threshold_table(ra: RunAnalysis) -> str:
    s, known = ra.test_scores, ra.data.test_labels >= 0
    rows = [
        ("score", ra.score_name),
        ("threshold", f"{ra.threshold:.4f}"),
        ("known test images accepted", f"{float((s[known] >= ra.threshold).double().mean()):.2%}"),
        ("unknown test images accepted", f"{float((s[~known] >= ra.threshold).double().mean()):.2%}"),
        ("source", ra.threshold_source),
    ]
    return (
        "<table>"
        + "".join(f"<tr><td>{k}</td><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
        + "</table>"
    )


def _figure(make: Callable[[], Figure], alt: str, caption: str, errors: list[str]) -> str:
    try:
        tag = img_tag(make(), alt)
    except Exception as e:  # one figure failing must not lose the report
        errors.append(f"{alt}: {type(e).__name__}: {e}")
        return f"<p class='note'>{html.escape(alt)} could not be drawn: {html.escape(str(e))}</p>"
    return f"<figure>{tag}<figcaption>{html.escape(caption)}</figcaption></figure>"


def _unfinished(ra: RunAnalysis) -> list[str]:
    """A note at the top when the run's checkpoint holds fewer epochs than its config asks for."""
    ck = ra.run.checkpoint
    if ck["complete"]:
        return []
    return [
        f"<p class='note'><b>Unfinished run</b>: its checkpoint holds epoch {ck['epoch']} of {ck['epochs']}; every "
        "number and figure below comes from that checkpoint.</p>"
    ]


def _score_sections(ra: RunAnalysis, errors: list[str]) -> list[str]:
    """Metrics, threshold, ROC, score distributions, confusion and class similarity: every method."""
    return [
        f"<h2>Metrics</h2>{_metrics_table(ra)}",
        f"<h2>Rejection threshold</h2>{_threshold_table(ra)}",
        "<h2>Scores and ROC</h2>",
        _figure(
            lambda: curves.roc_figure(ra), "ROC curves", "ROC of every score; dots: each threshold.", errors
        ),
        _figure(
            lambda: curves.score_distribution_figure(ra),
            "score distributions",
            "Known vs unknown test scores.",
            errors,
        ),  # fmt: skip
        "<h2>Confusion</h2>",
        _figure(
            lambda: embeddings.confusion_figure(ra), "confusion matrices", "At the threshold above.", errors
        ),
        _figure(
            lambda: representations.class_similarity_figure(ra),
            "class similarity",
            f"Cosine similarity of the test-set class means of {'z' if ra.class_owned_features else 'the logits'}.",
            errors,
        ),  # fmt: skip
    ]


def _representation_sections(ra: RunAnalysis, errors: list[str]) -> list[str]:
    """Mean representations and filter correlations: class-owned features only."""
    if not ra.class_owned_features:
        return []
    return [
        "<h2>Representations</h2>",
        _figure(
            lambda: representations.mean_representations_figure(ra, "train", True),
            "mean representations",
            "Mean z per class over correctly classified training images.",
            errors,
        ),  # fmt: skip
        _figure(
            lambda: representations.filter_correlation_figure(ra),
            "filter correlations",
            "Correlation of the DIFAIR conv's filters; boxes: one class's filters.",
            errors,
        ),  # fmt: skip
    ]


def _tsne_sections(ra: RunAnalysis, tsne_points: int, threads: int | None, errors: list[str]) -> list[str]:
    return [
        "<h2>t-SNE</h2>",
        _figure(
            lambda: embeddings.tsne_figure(ra, max_points=tsne_points, threads=threads),
            "t-SNE",
            f"At most {tsne_points} test samples"
            + ("; stars: anchors embedded jointly." if ra.anchors() is not None else "."),
            errors,
        ),  # fmt: skip
    ]


def _card_sections(ra: RunAnalysis, samples_per_kind: int, errors: list[str]) -> list[str]:
    """Sample cards of each kind (correct known, rejected known, ...): class-owned features only."""
    if not (ra.class_owned_features and samples_per_kind > 0):
        return []
    parts = ["<h2>Sample cards</h2>"]
    for kind, idx in sample_indices(ra, samples_per_kind).items():
        parts.append(f"<h3>{html.escape(SAMPLE_KINDS[kind])}</h3>")
        if not idx:
            parts.append("<p class='note'>none in the test set</p>")
        for i in idx:
            parts.append(
                _figure(lambda i=i: cards.sample_card(ra, i), f"card {kind} {i}", f"Test image #{i}.", errors)
            )
    return parts


def _page(ra: RunAnalysis, parts: list[str]) -> str:
    """The HTML page around the sections: title, run note, the image-status script."""
    run: LoadedRun = ra.run
    cfg = run.config
    title = f"{cfg.method} on {cfg.data.name} split {cfg.data.split} (seed {cfg.seed})"
    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    meta = (f"<p class='note'>Run folder {html.escape(str(run.run_dir))}; {len(ra.data.test_labels)} test images "
            f"({int((ra.data.test_labels >= 0).sum())} known); written {stamp} by difair {__version__}.</p>")  # fmt: skip
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>difair report: {html.escape(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>difair report: {html.escape(title)}</h1>{meta}{''.join(parts)}"
        "<div id='image-status' data-total='0' data-loaded='-1'>images not checked yet</div>"
        f"{STATUS_SCRIPT}</body></html>\n"
    )


def build_report(
    ra: RunAnalysis,
    *,
    samples_per_kind: int = 2,
    tsne: bool = True,
    tsne_points: int = TSNE_POINTS,
    threads: int | None = None,
) -> str:
    """The report's HTML text: its sections in order, then the problems met while drawing them."""
    errors: list[str] = []
    parts = _unfinished(ra) + _score_sections(ra, errors) + _representation_sections(ra, errors)
    if tsne:
        parts += _tsne_sections(ra, tsne_points, threads, errors)
    parts += _card_sections(ra, samples_per_kind, errors)
    parts.append(
        f"<h2>Configuration</h2><details open><summary>config.yaml</summary><pre>{html.escape(ra.run.config.to_yaml())}</pre></details>"
    )
    if errors:
        parts.append(
            "<h2>Problems</h2><ul>" + "".join(f"<li>{html.escape(e)}</li>" for e in errors) + "</ul>"
        )
    return _page(ra, parts)


def write_report(
    run: str | Path | LoadedRun | RunAnalysis,
    out: str | Path | None = None,
    *,
    data: OSRData | None = None,
    score: str | None = None,
    threshold: float | None = None,
    device: str | None = None,
    **options: Any,
) -> Path:
    """Write the HTML report of ``run`` to ``out`` (default ``RUN_DIR/report.html``); options as ``build_report``."""
    ra = (
        run
        if isinstance(run, RunAnalysis)
        else analyze(run, data=data, score=score, threshold=threshold, device=device)
    )
    path = Path(out) if out is not None else Path(ra.run.run_dir) / R.REPORT
    R.atomic_write_text(path, build_report(ra, **options))
    return path
