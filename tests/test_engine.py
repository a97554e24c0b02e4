"""The training engine: run folder, checkpoints, determinism, resume after a kill, divergence."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from difair.engine import rundir as R
from difair.engine.evaluate import evaluate_run_dir
from difair.engine.fit import fit
from difair.errors import DifairError, TrainingDiverged
from difair.methods import CEMethod
from tiny import tiny_config, tiny_overrides

RESULT_KEYS = {
    "method",
    "dataset",
    "split",
    "seed",
    "closed_set_accuracy",
    "auroc",
    "oscr",
    "aupr_in",
    "aupr_out",
    "fpr95",
    "score",
    "n_known",
    "n_unknown",
    "split_family",
    "fidelity",
    "scores",
}


@pytest.mark.parametrize(
    "method, scores",
    [
        ("difair", {"min_distance", "class_activation", "max_activation"}),
        ("ce", {"msp", "mls"}),
        ("cac", {"cac", "min_distance"}),
    ],
)
def test_run_folder_contents(tmp_path: Path, method: str, scores: set[str]) -> None:
    results = fit(tiny_config(method, epochs=2), tmp_path / "run", show_progress=False)
    run = tmp_path / "run"
    assert (run / "config.yaml").is_file() and (run / "checkpoints" / "last.pt").is_file()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["epochs"]) for r in rows] == [(1, 2), (2, 2)]  # "epoch 1/2", as messages say
    saved = json.loads((run / "results.json").read_text())
    assert set(saved) >= RESULT_KEYS
    assert set(saved["scores"]) == scores
    assert saved["n_known"] == saved["n_unknown"] > 0  # balanced test set
    assert 0 <= saved["auroc"] <= 1 and saved["auroc"] == saved["scores"][saved["score"]]["auroc"]
    assert saved["fidelity"]["corr_variant"] == "paper"
    assert results["closed_set_accuracy"] == saved["closed_set_accuracy"]
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=False)
    assert state["epoch"] == 1 and {"model", "optimizer", "schedule", "rng"} <= set(state)


def test_same_seed_same_results_and_eval_recomputes(tmp_path: Path) -> None:
    a = fit(tiny_config("cac", epochs=2), tmp_path / "a", show_progress=False)
    b = fit(tiny_config("cac", epochs=2), tmp_path / "b", show_progress=False)
    assert a["scores"] == b["scores"]
    again = evaluate_run_dir(tmp_path / "a")
    assert again["scores"] == a["scores"]  # CAC re-centring from the saved checkpoint is reproducible
    c = fit(tiny_config("cac", epochs=2, extra=["seed=1"]), tmp_path / "c", show_progress=False)
    assert c["scores"] != a["scores"]


def test_existing_folder_is_never_overwritten(tmp_path: Path) -> None:
    fit(tiny_config("ce", epochs=1), tmp_path / "r", show_progress=False)
    before = (tmp_path / "r" / "results.json").read_bytes()
    with pytest.raises(DifairError, match="--resume .* --overwrite"):
        fit(tiny_config("ce", epochs=1, extra=["seed=3"]), tmp_path / "r", show_progress=False)
    assert (tmp_path / "r" / "results.json").read_bytes() == before
    fit(tiny_config("ce", epochs=1, extra=["seed=3"]), tmp_path / "r", overwrite=True, show_progress=False)
    assert json.loads((tmp_path / "r" / "results.json").read_text())["seed"] == 3


def test_overwrite_refuses_a_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(DifairError, match="not a difair run folder"):
        fit(tiny_config("ce", epochs=1), tmp_path / "mine", overwrite=True, show_progress=False)
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"


def test_checkpoint_from_another_configuration_is_refused(tmp_path: Path) -> None:
    fit(tiny_config("difair", epochs=1), tmp_path / "r", show_progress=False)
    cfg_path = tmp_path / "r" / "config.yaml"
    cfg_path.write_text(cfg_path.read_text().replace("alpha: 10.0", "alpha: 5.0", 1))
    with pytest.raises(DifairError, match="another configuration"):
        evaluate_run_dir(tmp_path / "r")
    with pytest.raises(DifairError, match="another configuration"):
        fit(None, tmp_path / "r", resume=True, show_progress=False)


def test_nan_loss_stops_with_message_and_keeps_last_good_checkpoint(tmp_path: Path, monkeypatch) -> None:
    calls = {"n": 0}
    original = CEMethod.loss_terms

    def poisoned(self, outputs, target, head, scale=1.0):
        calls["n"] += 1
        terms = original(self, outputs, target, head, scale)
        if calls["n"] > 2 * 12:  # from the third epoch on (12 batches of 64 per epoch at most)
            terms["loss"] = terms["loss"] * float("nan")
        return terms

    monkeypatch.setattr(CEMethod, "loss_terms", poisoned)
    with pytest.raises(TrainingDiverged, match=r"loss became nan .* last good checkpoint"):
        fit(tiny_config("ce", epochs=5), tmp_path / "r", show_progress=False)
    state = torch.load(tmp_path / "r" / "checkpoints" / "last.pt", weights_only=False)
    assert state["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    rows = (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 2 and not (tmp_path / "r" / "results.json").exists()


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "difair.cli", *args]


@pytest.mark.slow
def test_resume_after_kill_matches_uninterrupted_run(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    sets = [a for o in tiny_overrides("difair", epochs=14) for a in ("--set", o)]
    full, killed = tmp_path / "full", tmp_path / "killed"
    subprocess.run(
        _cli("train", "--quiet", "--out", str(full), *sets), check=True, env=env, capture_output=True
    )

    proc = subprocess.Popen(
        _cli("train", "--quiet", "--out", str(killed), *sets),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    metrics = killed / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline:
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= 4:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "results.json").exists(), "the run finished before it could be killed"
    done = len(metrics.read_text().splitlines())
    assert 4 <= done < 14

    subprocess.run(
        _cli("train", "--quiet", "--resume", str(killed)), check=True, env=env, capture_output=True
    )
    a = json.loads((full / "results.json").read_text())
    b = json.loads((killed / "results.json").read_text())
    assert a["scores"] == b["scores"]
    wa = torch.load(full / R.CHECKPOINT, weights_only=False)["model"]
    wb = torch.load(killed / R.CHECKPOINT, weights_only=False)["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    rows = [json.loads(line)["epoch"] for line in (killed / "metrics.jsonl").read_text().splitlines()]
    assert rows == list(range(1, 15))  # counted from 1, as messages count them


def _wait_for(condition, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline and not condition():
        time.sleep(0.01)
    assert condition(), "timed out"


@pytest.mark.slow
def test_sigterm_cleans_up_and_says_how_to_continue_as_ctrl_c_does(tmp_path: Path) -> None:
    # kill, timeout(1), a scheduler's preemption: once a silent exit that left a hidden stage and an empty folder
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    sets = [a for o in tiny_overrides("difair", 400) for a in ("--set", o)]
    early = tmp_path / "early"
    proc = subprocess.Popen(
        _cli("train", "--quiet", "--out", str(early), *sets), env=env, stderr=subprocess.PIPE
    )
    _wait_for(lambda: any(tmp_path.glob(".early.*")))  # the hidden stage: before the first checkpoint
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert (
        err.decode().strip()
        == "difair: terminated (SIGTERM) before the run's first checkpoint: nothing was kept"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no stage, no empty run folder

    late = tmp_path / "late"
    proc = subprocess.Popen(
        _cli("train", "--quiet", "--out", str(late), *sets), env=env, stderr=subprocess.PIPE
    )
    _wait_for(lambda: (late / R.CHECKPOINT).is_file())
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and f"continue the run with: difair train --resume {late}" in err.decode()
    assert (late / R.CONFIG).is_file() and not any(tmp_path.glob(".late.*"))


@pytest.mark.slow
def test_sigterm_stops_the_demo_s_workers_instead_of_running_every_queued_job(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    out = tmp_path / "demo"
    argv = _cli("demo", "--out", str(out), "--epochs", "300", "--jobs", "1", "--splits", "0,1", "--quiet")
    proc = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE)
    _wait_for(lambda: any(out.glob("runs/*/checkpoints/last.pt")))  # the first run is training
    t0 = time.time()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert time.time() - t0 < 60  # not after the 5 queued runs of 300 epochs
    assert not list(out.glob("runs/*/results.json"))  # the running one stopped at its last checkpoint
    assert "run the same difair demo command again" in err.decode()
