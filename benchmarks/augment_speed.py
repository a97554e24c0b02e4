"""Time RandAugment on a batch of uint8 images: torchvision's per-image loop vs ``BatchRandAugment``.

    PYTHONPATH=src python benchmarks/augment_speed.py [--batch 128] [--size 32] [--n 1 2] [--device cpu]

Prints images/s for each backend and the ratio, for each N. Both backends run on the same device; the
per-image loop is what ``AugmentConfig.backend = "torchvision"`` does in training.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from torch import Tensor

from difair.data.augment import TorchvisionRandAugment
from difair.data.randaugment import BatchRandAugment


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_per_batch(fn: Callable[[], Tensor], device: torch.device, min_time: float, repeats: int) -> float:
    """Median over ``repeats`` of the mean seconds per call, each measured over at least ``min_time`` s."""
    fn()  # warm-up: caches, lazy init, CUDA context
    _sync(device)
    results = []
    for _ in range(repeats):
        calls = 0
        start = time.perf_counter()
        while True:
            fn()
            calls += 1
            _sync(device)
            elapsed = time.perf_counter() - start
            if elapsed >= min_time:
                break
        results.append(elapsed / calls)
    return sorted(results)[len(results) // 2]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--n", type=int, nargs="+", default=[1, 2], help="RandAugment num_ops values")
    parser.add_argument("--m", type=int, default=6, help="RandAugment magnitude")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: leave)")
    parser.add_argument("--min-time", type=float, default=1.0, help="seconds per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    images = torch.randint(
        0,
        256,
        (args.batch, args.channels, args.size, args.size),
        dtype=torch.uint8,
        generator=torch.Generator(),
    ).to(device)
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"cpu, {torch.get_num_threads()} threads"
    )
    print(
        f"RandAugment M={args.m} on {args.batch}x{args.channels}x{args.size}x{args.size} uint8, {name}, "
        f"torch {torch.__version__}"
    )
    print(f"{'N':>2}  {'torchvision img/s':>18}  {'batched img/s':>14}  {'ratio':>6}")
    for n in args.n:
        torch.manual_seed(0)
        generator = torch.Generator().manual_seed(0)
        reference = TorchvisionRandAugment(n, args.m)
        batched = BatchRandAugment(n, args.m)
        t_ref = time_per_batch(lambda f=reference: f(images), device, args.min_time, args.repeats)
        t_bat = time_per_batch(
            lambda f=batched, g=generator: f(images, g), device, args.min_time, args.repeats
        )
        print(f"{n:>2}  {args.batch / t_ref:>18,.0f}  {args.batch / t_bat:>14,.0f}  {t_ref / t_bat:>5.1f}x")


if __name__ == "__main__":
    main()
