"""The benchmark grid: one run per (method, dataset, split, seed), each in its own folder under ``OUT/runs``.

``run_one`` is the unit of work (a plain function, so that other backends can call it): it builds the run's
config (preset < overrides < grid coordinates) and trains, resumes or reuses the run through ``run_or_resume``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from difair.config import TrainConfig, apply_overrides
from difair.data.base import OSRData
from difair.data.normalization import reference_stats
from difair.data.splits import split_count
from difair.demo import demo_config
from difair.engine import rundir as R
from difair.engine.fit import EpochCallback
from difair.engine.runner import run_or_resume
from difair.errors import DifairError
from difair.presets import merge, preset_dict, preset_for

# Grid coordinates: set by --methods/--datasets/--splits/--seed/--epochs, never by --set.
RESERVED = {"method": "--methods", "data.name": "--datasets", "data.split": "--splits", "seed": "--seed",
            "epochs": "--epochs"}  # fmt: skip


@dataclass(frozen=True)
class RunSpec:
    """One cell of the grid."""

    method: str
    dataset: str
    split: int
    seed: int = 0

    @property
    def name(self) -> str:
        """The run folder's name (``difair.engine.rundir.run_name``)."""
        return R.run_name(self.method, self.dataset, self.split, self.seed)


def make_grid(
    methods: list[str], datasets: list[str], splits: list[int] | None, seed: int = 0
) -> list[RunSpec]:
    """All cells, dataset by dataset, split by split, method by method; ``splits`` None: each dataset's own
    (one for the SSB datasets and folders, five for the rest)."""
    return [
        RunSpec(m, d, s, seed)
        for d in datasets
        for s in (splits if splits is not None else range(split_count(d)))
        for m in methods
    ]


def check_overrides(overrides: list[str]) -> None:
    """Refuse ``--set`` on a grid coordinate: each has its own flag."""
    for item in overrides:
        key = item.split("=", 1)[0].strip()
        if key in RESERVED:
            raise DifairError(
                f"--set {key}=... is a grid coordinate in a benchmark: use {RESERVED[key]} instead"
            )


def base_config(method: str, dataset: str) -> tuple[dict[str, Any], str]:
    """The starting options of (method, dataset) and where they come from (a preset, or the demo's settings)."""
    name = preset_for(method, dataset)
    if name is not None:
        return merge(TrainConfig().to_dict(), preset_dict(name)), f"preset {name}"
    if dataset == "digits":
        return demo_config(method, 0).to_dict(), "the demo's digits settings (difair.demo; no paper preset)"
    raise DifairError(f"no preset for {method} on {dataset}: see difair presets list")


def run_config(spec: RunSpec, epochs: int | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """The resolved config of one run: base options, then ``overrides``, then the grid coordinates."""
    check_overrides(list(overrides or []))
    base, _ = base_config(spec.method, spec.dataset)
    coords = [
        f"method={spec.method}",
        f"data.name={spec.dataset}",
        f"data.split={spec.split}",
        f"seed={spec.seed}",
    ]
    if epochs is not None:
        coords.append(f"epochs={epochs}")
    cfg = TrainConfig.from_dict(apply_overrides(base, [*(overrides or []), *coords])).resolve()
    if cfg.data.normalization == "reference":  # a cell without the authors' constants fails before any trains
        reference_stats(cfg.data.name, cfg.data.split)
    return cfg


def epochs_done(run_dir: Path) -> int:
    """The epochs a run folder's checkpoint holds (0 if none or unreadable): where a resumed run starts, for
    progress display. Not the metrics log, which keeps the rows of epochs a kill left without a checkpoint."""
    path = run_dir / R.CHECKPOINT
    if not path.is_file():
        return 0
    try:
        return int(R.load_checkpoint(path)["epoch"]) + 1
    except (DifairError, OSError, KeyError, TypeError, ValueError):
        return 0  # the resume itself says what is wrong with it


def run_one(
    spec: RunSpec,
    run_dir: str | Path,
    *,
    epochs: int | None = None,
    overrides: list[str] | None = None,
    data: OSRData | None = None,
    show_progress: bool = False,
    on_epoch: EpochCallback | None = None,
) -> tuple[dict[str, Any], str]:
    """Train, resume or reuse one run into ``run_dir``: its results and ``"trained"``/``"resumed"``/``"reused"``."""
    cfg = run_config(spec, epochs, overrides)
    return run_or_resume(cfg, run_dir, data=data, show_progress=show_progress, on_epoch=on_epoch)


MANIFEST = "benchmark.json"


def _trains_otherwise(
    old: dict[str, Any], specs: list[RunSpec], epochs: int | None, overrides: list[str]
) -> str | None:
    """How ``epochs`` and ``overrides`` train a cell of the old or new grid otherwise than the old call's did (the
    cell and the first option that differs), or None: compared as the config digest sees them, so the order of
    ``--set`` and options that do not change training (threads, data.root, data.download, ...) do not count."""
    seed = (old.get("seeds") or [0])[0]
    cells = {RunSpec(m, d, 0, seed) for m in old.get("methods", []) for d in old.get("datasets", [])}
    cells |= {RunSpec(s.method, s.dataset, 0, s.seed) for s in specs}
    for c in sorted(cells, key=lambda c: (c.method, c.dataset, c.seed)):
        try:
            before = run_config(c, old.get("epochs"), old.get("overrides") or [])
        except DifairError:  # the old options no longer build a config: they cannot match
            return f"{c.method} on {c.dataset}: the old options no longer build a config"
        diff = before.difference(run_config(c, epochs, overrides))
        if diff:
            return f"{c.method} on {c.dataset}: {diff}"
    return None


def _holds_runs(out: Path) -> bool:
    runs = out / R.RUNS
    return runs.is_dir() and any(R.holds_files(d) for d in runs.iterdir() if d.is_dir())


def write_manifest(
    out: Path, specs: list[RunSpec], epochs: int | None, overrides: list[str]
) -> dict[str, Any]:
    """Record what this folder benchmarks; refuse a folder whose runs were trained with another budget or other
    training options (a folder where no run has started yet takes the new ones)."""
    path = out / MANIFEST
    old = json.loads(path.read_text()) if path.is_file() else None
    if old is not None and not _holds_runs(out):
        old = None
    diff = _trains_otherwise(old, specs, epochs, list(overrides)) if old is not None else None
    if diff:
        raise DifairError(
            f"{out} holds a benchmark with epochs={old.get('epochs')} and --set {old.get('overrides')}, which "
            f"train otherwise ({diff}; a default may have changed since): rerun with those, or choose another --out"
        )

    def union(key: str, new: list[Any]) -> list[Any]:
        seen = list((old or {}).get(key, []))
        return seen + [v for v in dict.fromkeys(new) if v not in seen]

    manifest = {
        "methods": union("methods", [s.method for s in specs]),
        "datasets": union("datasets", [s.dataset for s in specs]),
        "splits": sorted(set(union("splits", [s.split for s in specs]))),
        "seeds": sorted(set(union("seeds", [s.seed for s in specs]))),
        "epochs": epochs,
        "overrides": list(overrides),
        "sources": {
            **(old or {}).get("sources", {}),
            **{f"{s.method}-{s.dataset}": base_config(s.method, s.dataset)[1] for s in specs},
        },
    }
    R.write_json(path, manifest)
    return manifest


def read_manifest(out: Path) -> dict[str, Any] | None:
    path = out / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else None
