"""Training-step time against the intra-op thread count, and what ``cpu_threads=auto`` picks here.

    python benchmarks/cpu_threads.py [--threads 1,2] [--rounds 3] [--steps 3] [--width 1.0] [--set KEY=VALUE ...]

Run it inside the limit you want to measure, e.g. ``docker run --cpus 1 ...``, ``systemd-run --scope -p
CPUQuota=100% python ...``, or a cgroup of your own (docs/performance.md shows one made by hand). It prints the
affinity mask, the cgroup CPU quota (``difair.cpus.cgroup_cpu_limit``), what ``cpu_threads=auto`` resolves to,
and the median time of a VGG32 + DIFAIR training step (batch 128, 32x32, channels_last, the ``--fast`` precision
resolved for this CPU) at each thread count. The counts alternate round by round so that noise hits all alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch

from difair.config import FAST_PATH, TrainConfig, apply_overrides
from difair.cpus import affinity_cores, cgroup_cpu_limit, cores_within_quota
from difair.engine.build import build_model
from difair.engine.execution import resolve_precision
from difair.engine.hardware import cpu_model
from difair.engine.threads import PYTORCH_THREADS, auto_threads

CLASSES = 6


def step_timer(cfg: TrainConfig) -> Callable[[], float]:
    """A function that runs one training step of ``cfg``'s model on fixed random data and returns its seconds."""
    torch.manual_seed(0)
    x = torch.randn(cfg.batch_size, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, CLASSES, (cfg.batch_size,))
    model, method = build_model(cfg, CLASSES, 3, [0.0] * 3, [1.0] * 3)
    model = model.to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, foreach=True)
    bf16 = cfg.precision == "bf16-mixed"

    def step() -> float:
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = method.loss_terms(model(x), y, model.head)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return time.perf_counter() - t0

    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", default=None, help="comma-separated counts (default: 1 .. the affinity mask)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=3, help="timed steps per count and round (after one untimed)")
    p.add_argument("--width", type=float, default=1.0, help="model.width")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    a = p.parse_args()
    affinity = affinity_cores()
    counts = [int(t) for t in a.threads.split(",")] if a.threads else list(range(1, affinity + 1))
    overrides = [*FAST_PATH, f"model.width={a.width}", "epochs=1", *a.set]
    cfg = resolve_precision(
        TrainConfig.from_dict(apply_overrides(TrainConfig().to_dict(), overrides)).resolve()
    )
    limit = cgroup_cpu_limit()
    picked, why = auto_threads(PYTORCH_THREADS, cores_within_quota(affinity, limit))
    step = step_timer(cfg)
    times: dict[int, list[float]] = {t: [] for t in counts}
    for r in range(a.rounds):
        for t in counts if r % 2 == 0 else counts[::-1]:
            torch.set_num_threads(t)
            step()
            times[t] += [step() for _ in range(a.steps)]
    report = {
        "cpu": cpu_model(),
        "affinity": affinity,
        "cgroup_cpu_limit": limit,
        "pytorch_threads": PYTORCH_THREADS,
        "auto": f"{picked} ({why})",
        "precision": cfg.precision,
        "width": a.width,
        "ms_per_step": {t: round(statistics.median(v) * 1e3, 1) for t, v in times.items()},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
