"""Peak memory of one training epoch on a folder of JPEGs: ``data.cache=stream`` against ``memory``.

    PYTHONPATH=src python benchmarks/folder_memory.py --root /tmp/difair-folder-bench [--n 20000] [--side 256]
        [--size 224] [--modes stream memory] [--workers 1] [--batch 128] [--steps K]

Writes ``n`` synthetic JPEGs (``side`` px, smooth random content, 10 classes, 5 known) under ``ROOT/images`` once
(reused when present), then trains one epoch of a small config (small_cnn, width 0.25, batch 128, the resized
crop on the batched backend, no RandAugment) at ``data.image_size=SIZE`` in each mode, each in its own process,
and prints that process's peak RSS and the peak RSS of its largest child (a DataLoader worker), against the
decoded size of the training images ``n_train * SIZE * SIZE * 3`` bytes. The memory mode's decode-once cache is
written under ``ROOT/cache``. ``--steps K`` ends the epoch after ``K`` batches (everything before training, the
data loading, the decode-once cache, the normalisation pass, runs in full; so does the evaluation): on a CPU a full
epoch of 10,000 images at 224 px takes over 10 minutes per mode, while each mode's memory has peaked by then (memory:
once the cache is loaded; stream: once the workers hold their prefetched batches).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CLASSES = [f"c{i}" for i in range(10)]
TEST_PER_CLASS = 20


def make_folder(root: Path, n: int, side: int) -> Path:
    """``n`` training JPEGs spread over the classes, ``TEST_PER_CLASS`` test JPEGs per class (kept if present)."""
    from PIL import Image

    images = root / "images"
    done = images / f".complete-{n}-{side}"
    if done.is_file():
        return images
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for split, count in (("train", n), ("test", TEST_PER_CLASS * len(CLASSES))):
        for c in CLASSES:
            (images / split / c).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)  # smooth blobs plus fine noise: JPEG-like
            im = np.asarray(
                Image.fromarray(small).resize((side, side), Image.Resampling.BICUBIC), dtype=np.int16
            )
            im = np.clip(im + rng.integers(-12, 13, im.shape), 0, 255).astype(np.uint8)
            Image.fromarray(im).save(images / split / CLASSES[i % len(CLASSES)] / f"{i:06d}.jpg", quality=90)
    done.write_text("")
    print(
        f"wrote {n} + {TEST_PER_CLASS * len(CLASSES)} JPEGs in {time.perf_counter() - t0:.0f} s", flush=True
    )
    return images


def train_once(
    images: Path, root: Path, mode: str, size: int, workers: int, batch: int, steps: int | None = None
) -> dict:
    """One epoch (or its first ``steps`` batches) in this process; its peak RSS and its largest child's, in MB."""
    os.environ["DIFAIR_CACHE_DIR"] = str(root / "cache")
    import itertools

    from difair.config import TrainConfig
    from difair.engine.fit import fit

    # the module itself: difair.engine's `fit` attribute is the function
    fit_module = sys.modules["difair.engine.fit"]

    if steps is not None:
        whole_epoch = fit_module.epoch_batches
        fit_module.epoch_batches = lambda *a, **k: itertools.islice(whole_epoch(*a, **k), steps)

    cfg = TrainConfig()
    cfg.data.name, cfg.data.known = f"folder:{images}", CLASSES[:5]
    cfg.data.image_size, cfg.data.cache, cfg.data.workers = size, mode, workers
    cfg.model.backbone, cfg.model.width, cfg.model.dropout = "small_cnn", 0.25, 0.0
    cfg.epochs, cfg.batch_size, cfg.eval_batch_size = 1, batch, batch
    cfg.augment.crop, cfg.augment.backend, cfg.augment.randaugment_n = "resized", "batched", 0
    cfg.logging.tensorboard, cfg.accelerator = False, "cpu"
    t0 = time.perf_counter()
    fit(cfg, root / f"run-{mode}", overwrite=True, show_progress=False)
    wall = time.perf_counter() - t0
    rows = [json.loads(x) for x in (root / f"run-{mode}" / "metrics.jsonl").read_text().splitlines()]
    epoch = next(r for r in rows if "epoch_time_s" in r)
    return {
        "mode": mode,
        "steps": steps,
        "wall_s": round(wall, 1),
        "epoch_s": epoch["epoch_time_s"],
        "images_per_s": epoch["images_per_s"],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_child_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--side", type=int, default=256)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--modes", nargs="+", default=["stream", "memory"], choices=["stream", "memory"])
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=None, help="end the epoch after this many batches")
    ap.add_argument("--child", choices=["stream", "memory"], help=argparse.SUPPRESS)
    a = ap.parse_args()
    images = make_folder(a.root, a.n, a.side)
    if a.child:
        print(
            "RESULT " + json.dumps(train_once(images, a.root, a.child, a.size, a.workers, a.batch, a.steps)),
            flush=True,
        )
        return
    n_train = a.n // len(CLASSES) * 5  # the known classes' training images
    decoded_mb = n_train * a.size * a.size * 3 / 2**20
    folder_mb = (a.n + TEST_PER_CLASS * len(CLASSES)) * a.size * a.size * 3 / 2**20
    print(
        f"{n_train} training images (of {a.n}) at {a.size} px: decoded {decoded_mb:.0f} MB "
        f"(the whole folder: {folder_mb:.0f} MB)",
        flush=True,
    )
    for mode in a.modes:
        cmd = [sys.executable, __file__, *sys.argv[1:], "--child", mode]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            print(f"{mode}: failed\n{out.stderr[-2000:]}")
            continue
        r = json.loads(line[len("RESULT ") :])
        r["peak_rss_vs_decoded"] = round(r["peak_rss_mb"] / decoded_mb, 2)
        r["peak_rss_vs_folder"] = round(r["peak_rss_mb"] / folder_mb, 2)
        print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
