"""Run a benchmark grid sequentially with a progress bar, then write its tables.

Each cell goes through ``grid.run_one`` (finished runs are reused, interrupted ones resumed); the data of a
(dataset, split) is loaded once and shared by its methods. ``OUT/timing.json`` records how each run was obtained
and how long it took (kept out of the tables, so that they do not depend on interruptions).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from difair.bench.grid import RunSpec, epochs_done, run_config, run_one, write_manifest
from difair.bench.report import write_tables
from difair.config import TrainConfig
from difair.data.base import OSRData
from difair.engine import rundir as R
from difair.engine.build import load_data
from difair.engine.progress import make_progress
from difair.engine.runner import run_status

TIMING = "timing.json"


def _record_timing(out: Path, spec: RunSpec, how: str, seconds: float, results: dict[str, Any]) -> None:
    path = out / TIMING
    timing = json.loads(path.read_text()) if path.is_file() else {}
    entry = timing.get(spec.name, {})
    if how != "reused" or not entry:
        entry = {"how": how, "wall_s": round(seconds, 1)}
    entry["train_time_s"] = results.get("train_time_s")
    timing[spec.name] = entry
    R.write_json(path, dict(sorted(timing.items())))


def _data_key(cfg: TrainConfig) -> str:
    return json.dumps(cfg.data.__dict__, sort_keys=True)


def check_data(
    specs: list[RunSpec], configs: list[TrainConfig], out: Path, console: Console
) -> tuple[str, OSRData] | None:
    """Load each dataset the unfinished cells need once, before any trains (decoded images are cached, so the
    cells load them again quickly); the first cell's data is returned for it to use."""
    first: tuple[str, OSRData] | None = None
    seen: set[str] = set()
    for spec, cfg in zip(specs, configs, strict=True):
        if cfg.data.name in seen or run_status(cfg, out / R.RUNS / spec.name) == "done":
            continue
        seen.add(cfg.data.name)
        console.print(f"checking {cfg.data.name} ...", markup=False, highlight=False)
        data = load_data(cfg, None)
        if first is None:
            first = (_data_key(cfg), data)
    return first


def run_grid(
    out: str | Path,
    specs: list[RunSpec],
    *,
    epochs: int | None = None,
    overrides: list[str] | None = None,
    show_progress: bool = True,
    console: Console | None = None,
) -> list[dict[str, Any]]:
    """Run every cell of ``specs`` into ``out/runs/<name>``, then write the tables; returns the table rows."""
    out = Path(out)
    overrides = list(overrides or [])
    configs = [run_config(s, epochs, overrides) for s in specs]  # validate every cell before training any
    out.mkdir(parents=True, exist_ok=True)
    write_manifest(out, specs, epochs, overrides)
    console = console or Console(stderr=True)
    progress = make_progress(console) if show_progress else None
    total = sum(c.epochs for c in configs)
    cache = check_data(
        specs, configs, out, console
    )  # a missing dataset fails now, not after hours of other cells
    t0 = time.perf_counter()
    if progress is not None:
        progress.start()
        task = progress.add_task("benchmark", total=total, info="")
    try:
        for i, (spec, cfg) in enumerate(zip(specs, configs, strict=True)):
            run_dir = out / R.RUNS / spec.name
            done = cfg.epochs if run_status(cfg, run_dir) == "done" else epochs_done(run_dir)
            if progress is not None:
                progress.update(task, advance=done, description=f"[{i + 1}/{len(specs)}] {spec.name}")
            data = None
            if done < cfg.epochs:
                key = _data_key(cfg)
                if cache is None or cache[0] != key:
                    cache = (key, load_data(cfg, None))
                data = cache[1]

            def tick(row: dict[str, Any]) -> None:
                if progress is not None:
                    progress.update(task, advance=1, info=f"loss {row.get('train_loss', float('nan')):.3f}")

            t = time.perf_counter()
            results, how = run_one(
                spec, run_dir, epochs=epochs, overrides=overrides, data=data, on_epoch=tick
            )
            seconds = time.perf_counter() - t
            _record_timing(out, spec, how, seconds, results)
            console.print(
                f"{spec.name}: {how} in {seconds:.0f} s; {results['score']}: acc "
                f"{100 * results['closed_set_accuracy']:.2f} AUROC {100 * results['auroc']:.2f}",
                markup=False,
                highlight=False,
            )
    finally:
        if progress is not None:
            progress.stop()
    rows = write_tables(out)
    console.print(
        f"benchmark: {len(specs)} runs in {time.perf_counter() - t0:.0f} s; tables in {out}", markup=False
    )
    return rows
