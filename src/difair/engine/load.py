"""Load a trained run: its config, model, method and checkpoint state."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from difair.config import TrainConfig
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

    @property
    def class_names(self) -> list[str]:
        return list(self.state.get("class_names", []))


def load_run(run_dir: str | Path) -> LoadedRun:
    """Rebuild the model of ``run_dir`` from its config and last checkpoint; refuses a foreign checkpoint."""
    run_dir = Path(run_dir)
    cfg = R.read_run_config(run_dir)
    state = R.load_checkpoint(run_dir / R.CHECKPOINT)
    if state.get("config_digest") != cfg.digest():
        raise DifairError(
            f"checkpoint {run_dir / R.CHECKPOINT} comes from another configuration than {run_dir / R.CONFIG}: "
            "retrain the run with --overwrite"
        )
    model, method = build_model(cfg, state["num_classes"], state["channels"], state["mean"], state["std"])
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise DifairError(
            f"checkpoint {run_dir / R.CHECKPOINT} does not fit its config: retrain with --overwrite"
        ) from exc
    model.eval()
    return LoadedRun(run_dir, cfg, model, method, state)
