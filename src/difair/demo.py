"""The offline demo: DIFAIR, CE and CAC on the five digit splits (scikit-learn's load_digits), one table.

The backbone is a documented small CNN (``small_cnn8``: five 3x3 convs at half width on the digits' native 8x8
pixels, a 4x4 last map) rather than the paper's VGG32, which does not reach the same quality within the demo's
budget (15 runs in under 3 minutes on 2 CPU cores without native bf16; docs/demo.md has the measurements).
Precision is ``auto``: bf16 only where the CPU computes it natively.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from difair.config import TrainConfig, apply_overrides
from difair.methods import options_section

DEMO_METHODS = ("difair", "ce", "cac")
DEMO_EPOCHS = 80

# Settings shared by the three methods, then each method's own (learning rates tuned on split 0 only).
DEMO_COMMON = [
    "data.name=digits",
    "data.image_size=8",
    "model.backbone=small_cnn8",
    "model.width=0.5",
    "model.dropout=0.1",
    "batch_size=128",
    "precision=auto",
    "channels_last=false",  # measured: NCHW 14 % faster in the demo's two workers (docs/demo.md)
    "schedule.name=cosine_warmup",
    "augment.randaugment_n=0",
    "augment.hflip=false",
    "augment.crop_padding=1",
]
DEMO_METHOD = {
    "difair": ["optim.lr=0.1"],
    "ce": ["optim.lr=0.05"],
    "cac": ["optim.lr=0.05"],
}


def demo_config(
    method: str, split: int, epochs: int = DEMO_EPOCHS, extra: list[str] | None = None
) -> TrainConfig:
    """The demo's config of one run. A method without demo settings of its own takes those of the method whose
    options it shares (``Method.config_section``: a CE-trained method CE's learning rate), else the defaults'."""
    overrides = [
        *DEMO_COMMON,
        *DEMO_METHOD.get(method, DEMO_METHOD.get(options_section(method), [])),
        f"method={method}",
        f"data.split={split}",
        f"epochs={epochs}",
    ]
    return TrainConfig.from_dict(apply_overrides(TrainConfig().to_dict(), overrides + list(extra or [])))


def run_demo(
    out: str | Path,
    *,
    epochs: int = DEMO_EPOCHS,
    splits: list[int] | None = None,
    methods: tuple[str, ...] = DEMO_METHODS,
    extra: list[str] | None = None,
    workers: int | None = None,
    show_progress: bool = True,
    console: Console | None = None,
) -> list[dict[str, Any]]:
    """Train (or reuse) every demo run under ``out/runs`` and write ``out/table.md`` and ``out/table.json``."""
    # start-up time: the engine (torch, Fabric) loads here, not for `difair --help`
    from difair.data.splits import NUM_SPLITS
    from difair.engine import rundir as R
    from difair.engine.pool import Job, run_jobs
    from difair.eval.tables import aggregate, to_json, to_markdown

    out = Path(out)
    splits = list(range(NUM_SPLITS)) if splits is None else splits
    jobs = [
        Job(demo_config(m, s, epochs, extra), out / R.RUNS / f"{m}-split{s}", f"{m} split {s}")
        for s in splits
        for m in methods
    ]
    done = run_jobs(jobs, workers=workers, show_progress=show_progress, description="demo", console=console)
    rows = aggregate([res for res, _ in done])
    R.atomic_write_text(out / "table.md", demo_header(epochs, splits) + to_markdown(rows))
    R.atomic_write_text(out / "table.json", to_json(rows))
    return rows


def demo_header(epochs: int, splits: list[int]) -> str:
    return (
        f"# difair demo: digits (scikit-learn load_digits), splits {','.join(map(str, splits))}\n\n"
        f"small_cnn8 (half width) on 8x8 digits, {epochs} epochs per run; mean ± std over splits (population std).\n"
        "Scores: higher = more likely known. min_distance is DIFAIR's paper score.\n\n"
    )
