"""Load a trained run: its config, model, method and checkpoint state."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from difair.config import TrainConfig
from difair.data import OSRData, get_dataset
from difair.engine import rundir as R
from difair.engine.build import build_model
from difair.errors import DifairError
from difair.methods import Method
from difair.nn.backbones import OSRModel


@dataclass
class LoadedRun:
    """A run folder's config, model (eval mode, on CPU) and method."""

    run_dir: Path
    config: TrainConfig
    model: OSRModel
    method: Method
    state: dict[str, Any]
    fingerprint: str = ""  # of the checkpoint bytes loaded (rundir.read_checkpoint); "" when not from a file

    @property
    def class_names(self) -> list[str]:
        return list(self.state.get("class_names", []))

    @property
    def checkpoint(self) -> dict[str, Any]:
        """Which epoch of how many the loaded checkpoint holds (``checkpoint_record``)."""
        return checkpoint_record(int(self.state["epoch"]) + 1, self.config.epochs)


def checkpoint_record(epoch: int, epochs: int) -> dict[str, Any]:
    """Which epoch of how many a checkpoint holds, as ``results.json`` states it.

    ``epoch`` counts the epochs trained, from 1 as the messages do ("epoch 3 of 4"): the checkpoint written after
    the row ``"epoch": e - 1`` of ``metrics.jsonl`` (which counts from 0) holds epoch ``e``. ``complete``: all of
    the config's epochs are trained; results of an incomplete checkpoint are partial.
    """
    return {"epoch": epoch, "epochs": epochs, "complete": epoch >= epochs}


def load_run(run_dir: str | Path) -> LoadedRun:
    """Rebuild the model of ``run_dir`` from its config and last checkpoint; refuses a foreign checkpoint."""
    run_dir = Path(run_dir)
    cfg = R.read_run_config(run_dir)
    state, fingerprint = R.read_checkpoint(run_dir / R.CHECKPOINT)
    if state.get("config_digest") not in cfg.digests():
        raise DifairError(
            f"checkpoint {run_dir / R.CHECKPOINT} comes from another configuration than {run_dir / R.CONFIG}: "
            "retrain the run with --overwrite"
        )
    check_state(state, run_dir / R.CHECKPOINT, cfg.epochs)
    bad = [
        k for k, v in state["model"].items() if v.is_floating_point() and not bool(torch.isfinite(v).all())
    ]
    if bad:
        raise DifairError(
            f"checkpoint {run_dir / R.CHECKPOINT} holds non-finite weights ({bad[0]}): the checkpoint diverged; "
            "retrain it (e.g. with a lower optim.lr)"
        )
    model, method = build_model(
        cfg, state["num_classes"], state["channels"], state["mean"], state["std"], load_weights=False
    )  # every tensor comes from the checkpoint: no weight file, no download
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, TypeError, ValueError) as exc:
        raise DifairError(
            f"checkpoint {run_dir / R.CHECKPOINT} does not fit its config: retrain with --overwrite"
        ) from exc
    model.eval()
    return LoadedRun(run_dir, cfg, model, method, state, fingerprint)


def check_run_data(run: LoadedRun, data: OSRData) -> OSRData:
    """``data`` when its known classes are the ones ``run`` was trained on; one line when they changed (a class
    folder added or renamed makes ``data.known`` by index name other classes)."""
    check_classes(run.run_dir, run.class_names, list(data.class_names))
    return data


def check_classes(run_dir: Path, trained: list[str], now: list[str]) -> None:
    """One line when the known classes a run was trained on (``trained``; empty: not recorded) are not ``now``'s."""
    if trained and list(now) != list(trained):
        raise DifairError(
            f"{run_dir} {_class_change(list(trained), list(now))}: restore the dataset as it was (a run trained on "
            "data passed to fit(data=...): pass the same data=), or train a new run"
        )


def _class_change(trained: list[str], now: list[str]) -> str:
    """How the known classes differ, in a few words: the first differing position (or the counts)."""
    if len(trained) != len(now):
        return f"was trained on {len(trained)} known classes, but its dataset now gives {len(now)}"
    i = next(i for i, (a, b) in enumerate(zip(trained, now, strict=True)) if a != b)
    return f"was trained with known class {i} = {trained[i]!r}, but its dataset now gives {now[i]!r} there"


def run_data(run: LoadedRun, data: OSRData | None = None) -> OSRData:
    """The run's dataset (loaded from its config unless given), checked against the classes it was trained on."""
    return check_run_data(run, get_dataset(run.config.data) if data is None else data)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_state(state: Mapping[str, Any], path: Path, epochs: int | None = None) -> None:
    """One line when the fields of a checkpoint that rebuild its model have the wrong types (an edited or damaged
    file that still unpickles)."""
    stats = [state.get("mean"), state.get("std")]
    problems = {
        "model": isinstance(state.get("model"), Mapping)
        and all(isinstance(v, torch.Tensor) for v in state["model"].values()),
        "epoch": type(state.get("epoch")) is int
        and state["epoch"] >= 0
        and (epochs is None or state["epoch"] < epochs),
        "num_classes": type(state.get("num_classes")) is int and state["num_classes"] > 0,
        "channels": type(state.get("channels")) is int and state["channels"] > 0,
        "mean and std": all(
            isinstance(s, (list, tuple)) and len(s) == state.get("channels") and all(_is_number(x) for x in s)
            for s in stats
        ),
        "class_names": isinstance(state.get("class_names", []), (list, tuple))
        and all(isinstance(n, str) for n in state.get("class_names", [])),
    }
    bad = [k for k, ok in problems.items() if not ok]
    if bad:
        raise DifairError(
            f"checkpoint {path} is damaged ({', '.join(bad)} of the wrong type or out of range): restore it, or retrain the run "
            "with --overwrite"
        )


def read_results(run_dir: str | Path) -> dict[str, Any] | None:
    """A run's ``results.json`` (None when there is none); one line when it is not the mapping difair writes."""
    path = Path(run_dir) / R.RESULTS
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise DifairError(
            f"{path} is not valid JSON ({type(exc).__name__}): difair eval {run_dir} rewrites it"
        ) from exc
    scores = data.get("scores", {}) if isinstance(data, dict) else None
    if not isinstance(scores, dict) or not all(
        isinstance(m, dict) and all(_is_number(v) for v in m.values()) for m in scores.values()
    ):
        raise DifairError(
            f"{path} does not hold the results difair writes (a mapping with the metrics of each score): "
            f"difair eval {run_dir} rewrites it"
        )
    return data
