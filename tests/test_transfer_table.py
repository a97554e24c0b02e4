"""benchmarks/transfer_table.py: one row per finished run, with how its backbone was trained and its wall time."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "transfer_table.py"


def _script():
    spec = importlib.util.spec_from_file_location("transfer_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(bench: Path, name: str, model: dict, complete: bool = True, size: int | None = 224) -> None:
    run = bench / "runs" / name
    run.mkdir(parents=True)
    model = {"backbone": "efficientnet_lite0", "width": 1.0, **model}
    (run / "config.yaml").write_text(yaml.safe_dump({"model": model, "data": {"image_size": size}}))
    results = {
        "dataset": "tinyimagenet",
        "method": name.split("-")[0],
        "score": "mls",
        "closed_set_accuracy": 0.8125,
        "auroc": 0.7,
        "oscr": 0.654321,
        "epochs": 30,
        "train_time_s": 12.4,
        "checkpoint": {"epoch": 30 if complete else 3, "epochs": 30, "complete": complete},
    }
    (run / "results.json").write_text(json.dumps(results))


def test_rows_say_how_each_backbone_trained_and_skip_unfinished_runs(tmp_path: Path) -> None:
    t = _script()
    bench = tmp_path / "bench"
    _run(bench, "ce-a", {"pretrained": True, "freeze_backbone": True})
    _run(bench, "cac-b", {"pretrained": True, "backbone_lr_scale": 0.1})
    _run(bench, "difair-c", {"pretrained": False, "backbone": "vgg32", "width": 0.5}, size=None)
    _run(bench, "ce-d", {"pretrained": True}, complete=False)
    (bench / "timing.json").write_text(
        json.dumps({"ce-a": {"how": "trained", "wall_s": 99.6}, "cac-b": {"how": "reused", "wall_s": 0.0}})
    )
    rows = t.rows(bench)
    assert len(rows) == 3  # ce-d is unfinished
    cac, ce, difair = rows  # sorted by folder name
    assert "| fine-tuned (backbone lr x0.1) |" in cac and cac.endswith("| 12 |")  # reused: its training time
    assert "| frozen | 224 | 30 | ce | mls | 81.25 | 70.00 | 65.43 | 100 |" in ce  # timed by the grid
    assert "| vgg32 (width 0.5) | from scratch | native |" in difair


def test_a_folder_without_runs_is_refused(tmp_path: Path, monkeypatch, capsys) -> None:
    t = _script()
    monkeypatch.setattr("sys.argv", ["transfer_table.py", str(tmp_path)])
    with pytest.raises(SystemExit, match="not a benchmark folder"):
        t.main()
