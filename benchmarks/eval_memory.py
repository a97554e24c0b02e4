"""Peak memory of difair's evaluation against the size of the test set (it streams batches).

    python benchmarks/eval_memory.py [--sizes 1000 10000] [--batch 512] [--contrast]

For each size, a fresh subprocess builds VGG32 + the DIFAIR head and a synthetic uint8 test set of that many
32x32 RGB images (half known, half unknown), resets the process's RSS high-water mark (``/proc/self/clear_refs``),
runs ``difair.engine.evaluate.evaluate_model`` (outputs in batches, then every score's metrics) and reads the
high-water mark again. Reported: the test set's own bytes, RSS before evaluation, and the peak growth during
evaluation. Streaming means the growth stays flat while the test set grows 10x. ``--contrast`` adds the same
measurement with one batch holding the whole test set (what a non-streaming evaluation costs).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

MB = 1024 * 1024


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure(n: int, batch: int, threads: int) -> dict[str, float]:
    """In this process: RSS before evaluation and the peak growth while evaluating ``n`` images."""
    import torch

    from difair.config import TrainConfig
    from difair.data.base import OSRData
    from difair.engine.build import build_model
    from difair.engine.evaluate import evaluate_model

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    test = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 6, (n,), generator=g)
    labels[n // 2 :] = -1
    train = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, generator=g)
    data = OSRData("synthetic", 0, [str(i) for i in range(6)], train, torch.arange(64) % 6, test, labels,
                   [0.5] * 3, [0.25] * 3)  # fmt: skip
    cfg = TrainConfig().resolve()
    model, method = build_model(cfg, 6, 3, data.mean, data.std)
    model.eval()
    with torch.inference_mode():  # warm-up: allocator pools and oneDNN primitives exist before the baseline
        model(test[: min(batch, n)])
    before = _status_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    result = evaluate_model(model, method, data, batch_size=batch, device=torch.device("cpu"))
    peak = _status_kb("VmHWM")
    assert result["outputs"].shape[0] == n
    return {
        "images": n,
        "batch": batch,
        "test_set_mb": test.numel() / MB,
        "rss_before_mb": before / 1024,
        "peak_growth_mb": (peak - before) / 1024,
        "outputs_mb": result["outputs"].numel() * 4 / MB,
    }


def run_fresh(n: int, batch: int, threads: int) -> dict[str, float]:
    """``measure`` in a fresh interpreter, so earlier sizes leave no high-water mark or cached memory."""
    code = f"import json, eval_memory as m; print(json.dumps(m.measure({n}, {batch}, {threads})))"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]),
    }
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> list[dict[str, float]]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", type=int, default=[1000, 10000])
    p.add_argument(
        "--batch", type=int, default=512, help="evaluation batch size (TrainConfig.eval_batch_size)"
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--contrast", action="store_true", help="also evaluate each size in one batch")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    rows = []
    for n in args.sizes:
        batches = [args.batch] + ([n] if args.contrast else [])
        for b in batches:
            rows.append(run_fresh(n, b, args.threads))
            r = rows[-1]
            print(
                f"{r['images']:>6} images, batch {r['batch']:>6}: test set {r['test_set_mb']:7.1f} MB, "
                f"RSS before {r['rss_before_mb']:7.1f} MB, peak growth during evaluation {r['peak_growth_mb']:7.1f} MB",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()
