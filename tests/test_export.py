"""``difair export``: ONNX (onnxruntime) and TorchScript (torch.jit.load) files reproduce the Predictor.

Each method's tiny digits run (1 epoch) is exported in both formats; the files are run on the same test images
at batch sizes 1 and 7, and their scores and per-class outputs must match ``difair.load(RUN)`` within ``ATOL``
(measured: at most 2e-6 on distances of about 20), their closed-set classes exactly, and the accept/reject
decisions under the exported threshold must be identical (for every image whose score is not within ``ATOL``
of the threshold). The DIFAIR run uses ``data.crop_pct=0.875``, so the graph's centre crop is exercised.
"""

from __future__ import annotations

import importlib.util
import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import difair
from difair.cli import main
from difair.data import get_dataset
from difair.deploy import META_FILE, MODEL_FILES, export_run
from difair.engine.fit import fit
from difair.errors import DifairError
from difair.predict import THRESHOLD_FILE, load_images, read_calibration
from tiny import tiny_config

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

ATOL = 1e-4
EXTRA = {"difair": ["data.crop_pct=0.875"], "ce": [], "cac": []}
N_IMAGES = 14


def _trained(factory: pytest.TempPathFactory, method: str) -> Path:
    """The tiny 1-epoch digits run of ``method`` (trained on first use in this session)."""
    path = factory.getbasetemp() / "export-runs" / method
    if not (path / "results.json").is_file():
        fit(tiny_config(method, 1, EXTRA[method]), path, overwrite=True, show_progress=False)
    return path


@pytest.fixture(scope="module", params=list(EXTRA))
def run(request, tmp_path_factory) -> Path:
    return _trained(tmp_path_factory, request.param)


def _run_file(fmt: str, path: Path, x: torch.Tensor) -> list[np.ndarray]:
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {"images": x.numpy()})
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return [t.numpy() for t in torch.jit.load(str(path))(x)]


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_reproduces_the_predictor(run: Path, fmt: str, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "export"
    assert main(["export", str(run), "--format", fmt, "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([MODEL_FILES[fmt], META_FILE, "README.md"])
    meta = json.loads((out / META_FILE).read_text())
    pr = difair.load(run, device="cpu")
    cal = read_calibration(run)
    assert meta["class_names"] == pr.class_names and len(meta["class_names"]) > 1
    assert meta["score_name"] == pr.method.default_score == pr.score_name
    assert meta["threshold"] == pr.threshold == cal["threshold"]
    assert meta["calibration"]["checkpoint"] == cal["checkpoint"]
    size = meta["input"]["shape"][-1]
    crop = 0.875 if meta["method"] == "difair" else 1.0
    assert (size, meta["input"]["center_crop_to"]) == (9 if crop < 1 else 8, 8)
    assert meta["self_check"]["max_abs_diff"]["score"] < ATOL

    data = get_dataset(pr.run.config.data)
    # the Predictor's own framing of images at the input size: uint8 / 255, no resize, then its centre crop
    x, _, skipped = load_images(data.test_images[:N_IMAGES], size, meta["input"]["channels"])
    assert not skipped and x.dtype == torch.float32 and tuple(x.shape[1:]) == (1, size, size)
    ref = pr.predict(x)
    for batch in (1, 7):
        parts = [_run_file(fmt, out / MODEL_FILES[fmt], x[i : i + batch]) for i in range(0, len(x), batch)]
        score, per_class, nearest = (np.concatenate(p) for p in zip(*parts, strict=True))
        np.testing.assert_allclose(score, ref.scores.numpy(), atol=ATOL, rtol=0)
        np.testing.assert_allclose(per_class, ref.per_class.numpy(), atol=ATOL, rtol=0)
        assert nearest.dtype == np.int64 and np.array_equal(nearest, ref.nearest.numpy())
        clear = np.abs(ref.scores.numpy() - meta["threshold"]) > ATOL
        assert clear.sum() >= N_IMAGES - 1
        assert np.array_equal((score >= meta["threshold"])[clear], ref.accepted.numpy()[clear])
    for wrong in (
        torch.rand(2, 1, 2 * size, 2 * size),
        torch.rand(2, 1, size - 1, size - 1),
        x[:, :, :, :, None],
        (x * 255).round().to(torch.uint8),  # 0-255 pixels were clamped to [0, 1] and scored, silently
    ):
        with pytest.raises(Exception, match=r"images must be|INVALID_ARGUMENT|Got invalid dimensions"):
            _run_file(fmt, out / MODEL_FILES[fmt], wrong)  # never the corner of a larger image
    readme = (out / "README.md").read_text()
    assert ("onnxruntime" in readme) == (fmt == "onnx") and ("torch.jit.load" in readme) == (
        fmt == "torchscript"
    )
    assert f"[batch, 1, {size}, {size}]" in readme
    (snippet,) = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    monkeypatch.chdir(out)
    scope: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        exec(compile(snippet, f"{out}/README.md", "exec"), scope)  # the README's own example runs as written
    assert len(scope["labels"]) == 4 and set(scope["labels"]) <= {*pr.class_names, "unknown"}


def test_an_uncalibrated_run_is_calibrated_as_the_predictor_does(run: Path, tmp_path: Path, capsys) -> None:
    (run / THRESHOLD_FILE).unlink(missing_ok=True)
    rec = export_run(run, tmp_path / "e", "torchscript")
    assert "calibrated threshold" in capsys.readouterr().err
    assert rec["threshold"] == read_calibration(run)["threshold"] == difair.load(run, device="cpu").threshold


def test_a_given_threshold_without_calibration_is_said(tmp_path: Path, tmp_path_factory, capsys) -> None:
    run = _trained(tmp_path_factory, "ce")
    (run / THRESHOLD_FILE).unlink(missing_ok=True)
    rec = export_run(run, tmp_path / "e", "torchscript", threshold=0.5)
    assert (
        rec["threshold"] == 0.5 and rec["calibration"] is None and rec["threshold_source"].startswith("given")
    )
    assert "has no calibration" in capsys.readouterr().err and not (run / THRESHOLD_FILE).exists()
    assert "given at export" in (tmp_path / "e" / "README.md").read_text()


def _one_line_error(capsys, argv: list[str], match: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("difair: error:") and match in err, err


def test_bad_inputs_are_one_line_errors(tmp_path: Path, tmp_path_factory, capsys, monkeypatch) -> None:
    run = _trained(tmp_path_factory, "ce")
    _one_line_error(
        capsys, ["export", str(tmp_path), "--out", str(tmp_path / "o")], "not a difair run folder"
    )
    _one_line_error(
        capsys, ["export", str(run), "--format", "tflite", "--out", str(tmp_path / "o")], "onnx, torchscript"
    )
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("keep me")
    _one_line_error(capsys, ["export", str(run), "--out", str(busy)], "--overwrite")
    _one_line_error(capsys, ["export", str(run), "--out", str(busy), "--overwrite"], "not a difair export")
    assert (busy / "mine.txt").read_text() == "keep me"
    assert not list(tmp_path.glob(".*difair-export-*"))  # no stage left behind

    # --overwrite replaces an earlier export entirely
    earlier = tmp_path / "earlier"
    export_run(run, earlier, "torchscript", threshold=0.5)
    capsys.readouterr()
    (earlier / "stale.txt").write_text("old")
    _one_line_error(capsys, ["export", str(run), "--out", str(earlier)], "--overwrite")
    assert main(["export", str(run), "--out", str(earlier), "--format", "torchscript", "--overwrite"]) == 0
    assert not (earlier / "stale.txt").exists() and (earlier / MODEL_FILES["torchscript"]).is_file()

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else real(name, *a)
    )
    with pytest.raises(DifairError, match=r"pip install 'difair\[export\]'"):
        export_run(run, tmp_path / "no-onnx", "onnx")
    assert not (tmp_path / "no-onnx").exists()


def test_the_export_command_keeps_the_cli_light() -> None:
    import subprocess
    import sys

    code = "import sys; from difair.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"  # difair --help and the parsers never import torch (docs/design.md)


def test_the_export_texts_and_flags_cover_the_library_choices() -> None:
    from difair.deploy.commands import FORMATS
    from difair.deploy.export import EXPORT_FORMATS, MODEL_FILES
    from difair.deploy.readme import PER_CLASS_TEXT
    from difair.methods import METHODS
    from difair.methods.base import PER_CLASS_KINDS

    assert FORMATS == EXPORT_FORMATS == tuple(MODEL_FILES)  # the parser's copy, kept torch-free
    assert tuple(PER_CLASS_TEXT) == PER_CLASS_KINDS
    assert {m.per_class_kind for m in METHODS.values()} <= set(PER_CLASS_KINDS)


def test_the_lazy_packages_list_their_names_before_first_use() -> None:
    import subprocess
    import sys

    code = (
        "import difair.deploy, difair.viz, sys; names = set(dir(difair.deploy)) | set(dir(difair.viz)); "
        "print(set(difair.deploy.__all__) <= names and set(difair.viz.__all__) <= names, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "False"]  # dir() and help show them, and nothing heavy was imported
