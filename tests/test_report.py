"""The HTML report: self-contained (every image a data: URI), complete, and every image decodes in Chromium."""

from __future__ import annotations

import argparse
import base64
import io
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from difair.cli import main
from difair.data import get_dataset
from difair.engine.load import load_run
from difair.viz.analysis import analyze
from difair.viz.report import SAMPLE_KINDS, sample_indices, write_report
from viz_runs import digits_run

IMG = re.compile(r"<img\b[^>]*\bsrc=\"([^\"]*)\"")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=10000",
]


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, object]:
    run = digits_run(tmp_path_factory, "difair")
    ra = analyze(run, data=get_dataset(load_run(run).config.data), device="cpu")
    out = tmp_path_factory.mktemp("report") / "report.html"
    write_report(ra, out, samples_per_kind=1, tsne_points=150, threads=1)
    return out, ra


def test_report_is_self_contained_and_complete(report) -> None:
    path, ra = report
    text = path.read_text()
    srcs = IMG.findall(text)
    kinds = sum(1 for idx in sample_indices(ra, 1).values() if idx)
    assert (
        len(srcs) == 2 + 1 + 3 + 1 + kinds
    )  # ROC, scores, confusion, 3 representation figures, t-SNE, cards
    for src in srcs:
        assert src.startswith("data:image/png;base64,")
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as im:
            assert im.format == "PNG" and im.size[0] > 100
    assert not re.search(r"(src|href)=\"(https?:|//|file:)", text)  # nothing fetched from anywhere
    for fragment in (
        "Metrics",
        "AUROC",
        "Rejection threshold",
        "Sample cards",
        "config.yaml",
        "corr_variant",
    ):
        assert fragment in text
    for kind in SAMPLE_KINDS.values():
        assert kind in text
    assert f"{ra.threshold:.4f}" in text and "Problems" not in text


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("headless Chromium absent (Debian: apt-get install -y chromium)")


def test_every_image_loads_in_headless_chromium(report, tmp_path: Path) -> None:
    path, _ = report
    n = len(IMG.findall(path.read_text()))
    cmd = [
        _chromium(),
        *CHROMIUM_FLAGS,
        f"--user-data-dir={tmp_path / 'profile'}",
        "--dump-dom",
        path.as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    dom = proc.stdout
    status = re.search(r"id=\"image-status\"[^>]*data-total=\"(\d+)\"[^>]*data-loaded=\"(-?\d+)\"", dom)
    assert status, f"no image status in the rendered page (rc {proc.returncode}): {proc.stderr[-2000:]}"
    total, loaded = int(status.group(1)), int(status.group(2))
    assert total == n and loaded == n, f"{loaded} of {total} images loaded"


def test_cli_report_for_a_ce_run(tmp_path_factory, tmp_path: Path, capsys) -> None:
    run = digits_run(tmp_path_factory, "ce", epochs=2)
    out = tmp_path / "ce.html"
    assert main(["report", str(run), "--out", str(out), "--no-tsne", "--device", "cpu"]) == 0
    text = out.read_text()
    assert len(IMG.findall(text)) == 4  # ROC, scores, confusion, class similarity: no DIFAIR-only figures
    assert "Sample cards" not in text and "msp" in text and "mls" in text
    assert "class means of the logits" in text
    assert str(out) in capsys.readouterr().out
    assert main(["report", str(run), "--out", str(tmp_path / "r.pdf")]) == 2  # not an HTML file name
    assert "--out must end in .html" in capsys.readouterr().err and not (tmp_path / "r.pdf").exists()


def test_the_image_check_notices_a_broken_image(tmp_path: Path) -> None:
    from difair.viz.report import STATUS_SCRIPT

    good = base64.b64encode(_png()).decode()
    page = tmp_path / "page.html"
    page.write_text(
        f'<html><body><img src="data:image/png;base64,{good}"><img src="data:image/png;base64,AAAA">'
        f"<div id='image-status' data-total='0' data-loaded='-1'></div>{STATUS_SCRIPT}</body></html>"
    )
    cmd = [
        _chromium(),
        *CHROMIUM_FLAGS,
        f"--user-data-dir={tmp_path / 'profile'}",
        "--dump-dom",
        page.as_uri(),
    ]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    assert 'data-total="2"' in dom and 'data-loaded="1"' in dom


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (3, 2), (200, 10, 10)).save(buf, format="PNG")
    return buf.getvalue()


def test_an_unfinished_run_says_so_in_its_report_and_on_the_command_line(
    tmp_path_factory, tmp_path, capsys
) -> None:
    import shutil

    from difair.cliutil import interrupted_hint, unfinished_note
    from difair.engine import rundir as R

    run = tmp_path / "run"
    shutil.copytree(digits_run(tmp_path_factory, "ce", epochs=2), run)
    assert unfinished_note(run) is None
    rows = R.read_metrics(run)
    R.truncate_metrics(run, 1)
    state = R.load_checkpoint(run / R.CHECKPOINT)
    state["epoch"] = 0  # the checkpoint after the first of two epochs
    R.save_checkpoint(run / R.CHECKPOINT, state)
    assert len(rows) == 2 and unfinished_note(run).startswith(
        f"{run} is unfinished (its checkpoint holds epoch 1 of 2)"
    )
    assert main(["report", str(run), "--out", str(tmp_path / "r.html"), "--no-tsne"]) == 0
    assert "<b>Unfinished run</b>: its checkpoint holds epoch 1 of 2" in (tmp_path / "r.html").read_text()
    assert "is unfinished (its checkpoint holds epoch 1 of 2)" in capsys.readouterr().err
    assert unfinished_note(tmp_path / "no-run") is None
    # what Ctrl-C says depends on what was interrupted
    assert interrupted_hint(argparse.Namespace(command="train", training=run)).endswith(
        f"difair train --resume {run}"
    )
    assert "nothing was kept" in interrupted_hint(
        argparse.Namespace(command="train", training=tmp_path / "x")
    )
    old_mtime = (
        (run / "config.yaml").stat().st_mtime_ns
    )  # --overwrite stopped before the new run's first checkpoint
    hint = interrupted_hint(argparse.Namespace(command="train", training=run, replacing=old_mtime))
    assert "nothing of it was kept" in hint and "--resume" not in hint
    assert "same difair benchmark command" in interrupted_hint(argparse.Namespace(command="benchmark"))
    assert interrupted_hint(None) == ""


def test_a_read_only_run_folder_names_out(tmp_path_factory, capsys, monkeypatch) -> None:
    from difair.engine import rundir

    run = digits_run(tmp_path_factory, "difair")
    real = rundir.check_writable

    def read_only_run(path: Path) -> None:  # as on a read-only mount (root writes through permissions here)
        if Path(path).parent == run:
            raise rundir.cannot_write(Path(path), "Read-only file system")
        real(path)

    monkeypatch.setattr(rundir, "check_writable", read_only_run)
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err
    assert (
        "Read-only file system" in err and "unless --out PATH.html says where" in err and err.count("\n") == 1
    )
