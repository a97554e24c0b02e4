"""``export_run``: a run as an ONNX or TorchScript file with its class names, score and threshold beside it."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from difair.data.framing import resize_size
from difair.deploy.graph import INPUT_NAME, OUTPUT_NAMES, DeployModule, example_input
from difair.deploy.readme import readme_text
from difair.engine import rundir as R
from difair.errors import DifairError, check_choice
from difair.predict import Predictor
from difair.version import __version__

EXPORT_FORMATS = ("onnx", "torchscript")
MODEL_FILES = {"onnx": "model.onnx", "torchscript": "model.pt"}
META_FILE = "model.json"
README_FILE = "README.md"
ONNX_OPSET = 18
CHECK_BATCHES = (1, 3)  # the export's self-check: batch sizes other than the traced one (2)
INSTALL_HINT = "install the export extra: pip install 'difair[export]' (onnx, onnxruntime, onnxscript)"


def check_out_dir(out: Path, overwrite: bool) -> None:
    """Refuse a non-empty ``out`` unless ``overwrite``, and then only one that holds a difair export."""
    if out.exists() and not out.is_dir():
        raise DifairError(f"{out} is a file, not a folder: choose another --out")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not overwrite:
        raise DifairError(f"{out} exists and is not empty: choose another --out, or pass --overwrite")
    meta = out / META_FILE
    try:
        ours = json.loads(meta.read_text()).get("difair_export") is not None
    except (OSError, ValueError, AttributeError):
        ours = False
    if not ours:
        raise DifairError(
            f"{out} holds files that are not a difair export (no {META_FILE} written by difair export): "
            "--overwrite replaces only an earlier export; choose another --out"
        )


def _need(*modules: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise DifairError(f"ONNX export needs the package {', '.join(missing)}: {INSTALL_HINT}")


def _write_onnx(module: DeployModule, x: torch.Tensor, path: Path) -> str:
    """The dynamo exporter (``torch.export`` + onnxscript), batch dimension dynamic; returns its description."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (x,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            dynamic_shapes={INPUT_NAME: {0: torch.export.Dim("batch")}},
            opset_version=ONNX_OPSET,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    return f"torch.onnx.export(dynamo=True, opset_version={ONNX_OPSET}) of torch {torch.__version__}"


def _write_torchscript(module: DeployModule, x: torch.Tensor, path: Path) -> str:
    with warnings.catch_warnings():
        # the shape checks of difair.nn.functional are constant for a fixed feature size; the batch stays free
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", FutureWarning)  # torch 2.14 deprecates TorchScript (docs/export.md)
        traced = torch.jit.trace(module, (x,), check_trace=False)
        torch.jit.save(traced, str(path))
    return f"torch.jit.trace of torch {torch.__version__}"


def _run_exported(fmt: str, path: Path, x: torch.Tensor) -> list[np.ndarray] | None:
    if fmt == "torchscript":
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return [t.numpy() for t in torch.jit.load(str(path))(x)]
    if importlib.util.find_spec("onnxruntime") is None:
        return None
    import onnxruntime as ort  # optional: the export extra

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return list(session.run(None, {INPUT_NAME: x.numpy()}))


def self_check(fmt: str, path: Path, module: DeployModule, channels: int, size: int) -> dict[str, Any] | None:
    """Run the written file at batch sizes ``CHECK_BATCHES`` against the eager module; the largest differences.

    Raises ``DifairError`` when the file does not reproduce the module (shape, class or score off); None when
    onnxruntime is absent.
    """
    diffs = {"score": 0.0, "per_class": 0.0}
    for b in CHECK_BATCHES:
        x = example_input(channels, size, b, seed=b)
        got = _run_exported(fmt, path, x)
        if got is None:
            return None
        with torch.no_grad():
            ref = [t.numpy() for t in module(x)]
        if [g.shape for g in got] != [r.shape for r in ref] or not np.array_equal(got[2], ref[2]):
            raise DifairError(
                f"the exported {fmt} model does not reproduce the run at batch size {b}: "
                "report it with the run's config.yaml"
            )
        for i, name in enumerate(("score", "per_class")):
            diffs[name] = max(diffs[name], float(np.abs(got[i] - ref[i]).max()))
    return {"batch_sizes": list(CHECK_BATCHES), "max_abs_diff": diffs}


def _calibration_summary(pr: Predictor) -> dict[str, Any] | None:
    cal = pr.calibration
    if cal is None:
        return None
    keys = (
        "score",
        "threshold",
        "keep_known",
        "calibrated_on",
        "calibration_set",
        "known_accepted",
        "unknown_accepted",
        "checkpoint",
    )
    return {k: cal.get(k) for k in keys}


def export_run(
    run_dir: str | Path,
    out: str | Path,
    fmt: str = "onnx",
    *,
    overwrite: bool = False,
    score: str | None = None,
    threshold: float | None = None,
    keep: float | None = None,
    device: str | None = None,
) -> dict[str, Any]:
    """Write ``out/model.onnx`` or ``out/model.pt``, ``out/model.json`` and ``out/README.md`` for ``run_dir``.

    The run is loaded and its threshold taken as ``difair.load(run_dir, ...)`` does (calibrating and storing
    ``threshold.json`` when the run has none, as ``difair predict``). Returns the ``model.json`` record.
    """
    check_choice("export format", fmt, EXPORT_FORMATS)
    run_dir, out = Path(run_dir), Path(out)
    if not (run_dir / R.CONFIG).is_file():
        raise DifairError(
            f"{run_dir} is not a difair run folder (no {R.CONFIG}): pass the folder difair train wrote"
        )
    check_out_dir(out, overwrite)
    if fmt == "onnx":
        _need("onnx", "onnxscript")
    pr = Predictor(run_dir, threshold=threshold, score=score, keep=keep, device=device)
    if pr.score_note:
        print(f"difair: note: {pr.score_note}", file=sys.stderr)
    if pr.calibrated_now:
        print(f"difair: {pr.calibration_note()}", file=sys.stderr)
    if pr.calibration is None:
        print(
            f"difair: note: {run_dir} has no calibration: the export carries the given threshold only",
            file=sys.stderr,
        )
    crop = pr.run.config.data.crop_pct
    input_size = resize_size(pr.image_size, crop)
    module = DeployModule(pr.model.cpu(), pr.method, pr.score_name, pr.image_size, input_size)
    x = example_input(pr.channels, input_size, 2)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.difair-export-", dir=out.parent))
    R.plain_mode(stage, folder=True)  # the export folder it becomes: as readable as a plain mkdir
    try:
        model_path = stage / MODEL_FILES[fmt]
        exporter = (_write_onnx if fmt == "onnx" else _write_torchscript)(module, x, model_path)
        check = self_check(fmt, model_path, module, pr.channels, input_size)
        record = _record(pr, fmt, exporter, check, input_size, crop, threshold)
        R.write_json(stage / META_FILE, record)
        (stage / README_FILE).write_text(readme_text(record))
        if out.exists():
            shutil.rmtree(out)  # empty, or an earlier export (check_out_dir)
        stage.rename(out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    if check is None:
        print(
            f"difair: note: {out}/{MODEL_FILES[fmt]} was not run after writing (onnxruntime absent): {INSTALL_HINT}",
            file=sys.stderr,
        )
    return record


def _record(
    pr: Predictor, fmt: str, exporter: str, check, input_size: int, crop, threshold
) -> dict[str, Any]:
    method = pr.method
    return {
        "difair_export": 1,
        "difair_version": __version__,
        "format": fmt,
        "file": MODEL_FILES[fmt],
        "exporter": exporter,
        "run": str(pr.run.run_dir),
        "method": method.name,
        "class_names": pr.class_names,
        "score_name": pr.score_name,
        "higher_score_is_known": True,
        "threshold": pr.threshold,
        "threshold_source": "given (--threshold)"
        if threshold is not None
        else "calibration (threshold.json)",
        "calibration": _calibration_summary(pr),
        "per_class_kind": method.per_class_kind,
        "input": {
            "name": INPUT_NAME,
            "dtype": "float32",
            "range": [0.0, 1.0],
            "layout": "NCHW",
            "shape": ["batch", pr.channels, input_size, input_size],
            "channels": pr.channels,
            "color": "grey (L)" if pr.channels == 1 else "RGB",
            "center_crop_to": pr.image_size,
            "crop_pct": crop,
        },
        "outputs": [
            {"name": "score", "dtype": "float32", "shape": ["batch"]},
            {"name": "per_class", "dtype": "float32", "shape": ["batch", len(pr.class_names)]},
            {"name": "nearest", "dtype": "int64", "shape": ["batch"]},
        ],
        "self_check": check,
    }
