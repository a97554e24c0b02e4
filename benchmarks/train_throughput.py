"""Training throughput: a reference-style PyTorch loop against difair's engine, on the same data and model.

    python benchmarks/train_throughput.py [--steps 8] [--rounds 5] [--workers 2] [--device cpu] [--compile]

Both train VGG32 + the DIFAIR head (6 known classes, CIFAR-10 split 0, from the JPEG tree at
$DIFAIR_DATA/cifar10-jpeg or ~/.cache/difair-data/cifar10-jpeg) with batch size 128 and the DIFAIR loss:

(a) reference: torchvision ``ImageFolder`` of the JPEGs, per-sample RandomCrop(32, padding=4),
    RandomHorizontalFlip, RandAugment(1, 6), ToTensor, Normalize in a ``DataLoader`` with worker processes;
    fp32, NCHW, plain ``torch.optim.SGD`` (no foreach/fused).
(b) difair: ``difair.engine.loop.train_one_epoch`` (the code path of ``difair train``) with ``--fast``
    (``FAST_PATH``): the decode-once uint8 cache resident on the device, batched crop/flip/RandAugment,
    ``precision=auto`` (bf16 autocast where the device computes bf16 natively, else fp32),
    ``channels_last=auto`` (a timed probe on CPU), foreach SGD, the fast dropout mask, optionally ``torch.compile``.
    ``cpu_allocator=retain`` keeps freed blocks in glibc's heap; it is process-wide, so (a) runs with it too.

The two alternate in timed windows of ``--steps`` steps (a, b, a, b, ...), so machine noise hits both alike;
each window starts with untimed steps that drain what (a)'s workers prefetched meanwhile. Prints images/s
(median over the windows) of each, the ratio, and the machine.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from difair.config import FAST_PATH, TrainConfig, apply_overrides
from difair.cpus import cgroup_cpu_limit, usable_cores
from difair.data import default_root, get_dataset
from difair.data.cifar import CIFAR10_CLASSES, CIFAR10_JPEG_DIR
from difair.data.splits import get_known_classes
from difair.engine.build import build_model
from difair.engine.hardware import NATIVE_BF16_FLAGS, cpu_flags, cpu_peak_gflops, cpuinfo_fields
from difair.engine.loop import TrainLoop, build_loop, train_one_epoch
from difair.engine.schedule import set_lr

BATCH = 128
LR = 0.05  # a mid-schedule rate; both loops use it


def machine_info() -> dict[str, Any]:
    """CPU model, cores, load, torch version and threads, and the GPU when there is one."""
    fields = cpuinfo_fields() or {}
    cpu = fields.get("model name") or platform.processor() or "?"
    flags = cpu_flags() or frozenset()
    family_model = {k: fields[k] for k in ("cpu family", "model") if k in fields}
    info: dict[str, Any] = {
        "cpu": cpu,
        "cpu_family_model": family_model,
        "cores": os.cpu_count(),
        "cores_usable": usable_cores(),  # affinity mask capped by a cgroup CPU quota
        "cgroup_cpu_limit": cgroup_cpu_limit(),
        "bf16_isa": sorted(f for f in flags if f in (*NATIVE_BF16_FLAGS, "amx_tile")),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "loadavg": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------------- (a) reference-style loop
def reference_dataset(root: Path, known: list[int]):
    """ImageFolder of the CIFAR-10 JPEG training tree, restricted to ``known`` and relabelled 0..n-1."""
    from torchvision import datasets, transforms

    tf = transforms.Compose(
        [
            transforms.RandomCrop(32, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.RandAugment(num_ops=1, magnitude=6),
            transforms.ToTensor(),
            transforms.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
        ]
    )
    ds = datasets.ImageFolder(str(root / CIFAR10_JPEG_DIR / "train"), transform=tf)
    to_new = {ds.class_to_idx[CIFAR10_CLASSES[c]]: i for i, c in enumerate(known)}
    ds.samples = [(p, to_new[t]) for p, t in ds.samples if t in to_new]
    ds.targets = [t for _, t in ds.samples]
    ds.imgs = ds.samples
    return ds


class ReferenceLoop:
    """The usual loop: DataLoader workers decode and augment per sample; fp32, NCHW, plain SGD."""

    def __init__(self, cfg: TrainConfig, ds, workers: int, device: torch.device):
        torch.manual_seed(cfg.seed)
        # the DataLoader normalises, so the model's own normalisation is the identity
        self.model, self.method = build_model(cfg, 6, 3, [0.0, 0.0, 0.0], [1.0, 1.0, 1.0])
        self.model.to(device).train()
        self.device = device
        self.optimizer = torch.optim.SGD(
            self.model.parameters(),
            lr=LR,
            momentum=cfg.optim.momentum,
            weight_decay=cfg.optim.weight_decay,
            foreach=False,
        )
        self.loader = torch.utils.data.DataLoader(
            ds,
            batch_size=BATCH,
            shuffle=True,
            drop_last=True,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=device.type == "cuda",
        )
        self.prefetched = 2 * workers  # batches the workers can hold ready (prefetch_factor 2)
        self.batches = self._forever()

    def _forever(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        while True:
            yield from self.loader

    def steps(self, n: int) -> None:
        for x, y in itertools.islice(self.batches, n):
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            out = self.model(x)
            loss = self.method.loss_terms(out, y, self.model.head)["loss"]
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()


# ---------------------------------------------------------------------- (b) difair's engine
def fast_config(device: str, compile_model: bool, root: Path, extra: list[str] | None = None) -> TrainConfig:
    overrides = [
        "method=difair",
        "data.name=cifar10",
        "data.split=0",
        f"data.root={root}",
        f"batch_size={BATCH}",
        f"accelerator={device}",
        *FAST_PATH,  # precision/channels_last auto, batched augmentation, foreach SGD, fast dropout (--fast)
        f"compile={str(compile_model).lower()}",
        *(extra or []),  # --set: e.g. precision=bf16-mixed to time what auto did not choose
    ]
    return TrainConfig.from_dict(apply_overrides(TrainConfig().to_dict(), overrides))


class FastLoop:
    """difair's training epoch over an endless stream of random index batches."""

    def __init__(self, loop: TrainLoop):
        self.loop = loop
        set_lr(loop.optimizer, LR)
        self.gen = torch.Generator().manual_seed(0)
        self.batches = self._forever()
        self.prefetched = 1

    def _forever(self) -> Iterator[torch.Tensor]:
        while True:
            yield from torch.randperm(len(self.loop.labels), generator=self.gen).split(BATCH)

    def steps(self, n: int) -> None:
        batches = (b for b in self.batches if len(b) == BATCH)
        train_one_epoch(self.loop, itertools.islice(batches, n), self.gen)


# ---------------------------------------------------------------------- FLOPs, peak bf16, synthetic data
BF16_PEAK_TFLOPS = {  # dense bf16 tensor-core peaks from the vendors' data sheets (no sparsity)
    "H200": 989.4,
    "H100 SXM": 989.4,
    "H100 80GB HBM3": 989.4,
    "H100 NVL": 835.0,
    "H100 PCIe": 756.0,
    "H100": 756.0,
    "A100": 312.0,
    "L40S": 362.1,
    "L4": 121.0,
    "A10": 125.0,
}


def bf16_peak_tflops(gpu_name: str) -> float | None:
    """The card's dense bf16 peak, by the first key found in its name (None when unknown)."""
    for key, value in BF16_PEAK_TFLOPS.items():
        if key in gpu_name:
            return value
    return None


def train_flops_per_image(loop: TrainLoop) -> float:
    """FLOPs of one training image (forward + backward of model and loss), counted by FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    n = 4
    x = loop.images[:n].float().div(255).contiguous(memory_format=loop.memory_format)
    with FlopCounterMode(display=False) as fc:
        out = loop.model(x)
        loop.method.loss_terms(out, loop.labels[:n], loop.model.head)["loss"].backward()
    loop.optimizer.zero_grad(set_to_none=True)
    return fc.get_total_flops() / n


def write_synthetic_cifar(root: Path, per_class: int) -> Path:
    """A CIFAR-10-shaped JPEG tree of noise images (``per_class`` train, ``per_class // 5`` test per class)."""
    import numpy as np
    from PIL import Image

    tree = root / CIFAR10_JPEG_DIR
    rng = np.random.default_rng(0)
    for split, n in (("train", per_class), ("test", max(1, per_class // 5))):
        for name in CIFAR10_CLASSES:
            folder = tree / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(img).save(folder / f"{i:05d}.jpg", quality=90)
    return root


# ---------------------------------------------------------------------- timing
def timed_window(run: Callable[[int], None], pre: int, n: int, device: torch.device) -> float:
    """Images/s of ``n`` steps after ``pre`` untimed ones."""
    run(pre)
    _sync(device)
    t0 = time.perf_counter()
    run(n)
    _sync(device)
    return n * BATCH / (time.perf_counter() - t0)


def alternate(
    loops: dict[str, Any], steps: int, rounds: int, device: torch.device, peak: dict[str, float] | None = None
) -> dict[str, list[float]]:
    """Timed windows of each loop in turn, ``rounds`` times; returns images/s per window.

    On CUDA ``peak`` receives each loop's peak allocated memory (GiB) over its windows."""
    out: dict[str, list[float]] = {k: [] for k in loops}
    for r in range(rounds):
        for name, lp in loops.items():
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            out[name].append(timed_window(lp.steps, lp.prefetched, steps, device))
            if device.type == "cuda" and peak is not None:
                gib = torch.cuda.max_memory_allocated(device) / 2**30
                peak[name] = max(peak.get(name, 0.0), gib)
            print(f"  round {r + 1}/{rounds} {name:<9} {out[name][-1]:8.1f} img/s", flush=True)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=8, help="timed steps per window")
    p.add_argument("--rounds", type=int, default=5, help="windows per loop, alternating")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps of each loop before the first window")
    p.add_argument(
        "--workers", type=int, default=min(2, os.cpu_count() or 1), help="DataLoader workers of (a)"
    )
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument(
        "--threads", type=int, default=None, help="intra-op threads of both loops (default: cpu_threads=auto)"
    )
    p.add_argument("--compile", action="store_true", help="torch.compile the fast path's model")
    p.add_argument(
        "--root", type=Path, default=None, help="data root (default: $DIFAIR_DATA or ~/.cache/difair-data)"
    )
    p.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="difair option"
    )
    p.add_argument(
        "--synthetic-per-class",
        type=int,
        default=0,
        metavar="K",
        help="no CIFAR-10 at hand: time on a generated JPEG tree of K noise images per class (in a temp dir)",
    )
    args = p.parse_args(argv)
    # --threads: both loops, the reference's now and difair's through cpu_threads (auto would lower it)
    if args.threads:
        torch.set_num_threads(args.threads)
        args.overrides = [f"cpu_threads={args.threads}", *args.overrides]
    device = torch.device(args.device)
    root = args.root or default_root()
    if args.synthetic_per_class:
        import tempfile

        root = write_synthetic_cifar(
            Path(tempfile.mkdtemp(prefix="difair-synthetic-")), args.synthetic_per_class
        )
        print(f"synthetic data: {args.synthetic_per_class} noise JPEGs per class in {root}")
    machine = machine_info()
    print("machine:", json.dumps(machine))

    cfg = fast_config(device.type, args.compile, root, args.overrides)
    t0 = time.perf_counter()
    data = get_dataset(cfg.data)  # the decode-once uint8 cache (built on first use)
    print(
        f"data: {len(data.train_labels)} training images of {data.class_names}, {time.perf_counter() - t0:.1f} s"
    )
    known = get_known_classes("cifar10", 0)
    ref_ds = reference_dataset(root, known)
    assert len(ref_ds) == len(data.train_labels), "both loops must see the same training set"
    ref_cfg = TrainConfig.from_dict(
        apply_overrides(
            cfg.to_dict(), ["precision=32-true", "channels_last=false", "model.dropout_backend=torch"]
        )
    )
    loops = {"reference": ReferenceLoop(ref_cfg.resolve(), ref_ds, args.workers, device)}
    loops["difair"] = FastLoop(build_loop(cfg, data))
    resolved = loops["difair"].loop.cfg  # precision and channels_last as resolved from auto on this machine
    print(
        f"difair runs precision={resolved.precision} channels_last={resolved.channels_last} "
        f"threads={torch.get_num_threads()}"
        + "".join(
            f"\n  {why}"
            for why in (resolved.auto.precision, resolved.auto.channels_last, resolved.auto.cpu_threads)
            if why
        )
    )
    flops = train_flops_per_image(loops["difair"].loop)
    print(f"training FLOPs per image (VGG32 + DIFAIR head, forward + backward): {flops / 1e9:.3f} GFLOP")
    for name, lp in loops.items():
        t0 = time.perf_counter()
        lp.steps(args.warmup + lp.prefetched)
        _sync(device)
        print(f"warm-up {name}: {time.perf_counter() - t0:.1f} s")

    peak: dict[str, float] = {}
    ips = alternate(loops, args.steps, args.rounds, device, peak)
    med = {k: statistics.median(v) for k, v in ips.items()}
    ratio = med["difair"] / med["reference"]
    tflops = {k: v * flops / 1e12 for k, v in med.items()}
    machine_after = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(
        f"\nreference (ImageFolder+DataLoader[{args.workers} workers], fp32, NCHW, SGD): {med['reference']:8.1f} img/s"
    )
    print(
        f"difair    (uint8 cache, batched aug, {resolved.precision}, channels_last={resolved.channels_last}, "
        f"foreach SGD, fast dropout{', compile' if args.compile else ''}): {med['difair']:8.1f} img/s"
    )
    print(f"ratio difair/reference: {ratio:.2f}x  (medians of {args.rounds} windows of {args.steps} steps)")
    print(f"load average before {machine['loadavg']} after {machine_after}")
    peak_tf = bf16_peak_tflops(machine.get("gpu", "")) if device.type == "cuda" else None
    print(
        f"achieved TFLOP/s: difair {tflops['difair']:.2f}, reference {tflops['reference']:.2f}"
        + (
            f"; the card's dense bf16 peak {peak_tf:.0f} -> {100 * tflops['difair'] / peak_tf:.1f} %"
            if peak_tf
            else ""
        )
    )
    cpu_peak = cpu_peak_gflops(resolved.precision) if device.type == "cpu" else None
    ref_peak = cpu_peak_gflops("32-true") if device.type == "cpu" else None  # the reference runs fp32
    if cpu_peak and ref_peak:
        (gf, how), (rgf, _) = cpu_peak, ref_peak
        print(
            f"CPU peak for difair's {resolved.precision}: {gf:.0f} GFLOP/s ({how}), achieved "
            f"{100 * tflops['difair'] * 1e3 / gf:.0f} %; for the reference's 32-true: {rgf:.0f} GFLOP/s, achieved "
            f"{100 * tflops['reference'] * 1e3 / rgf:.0f} % (nominal clock: turbo can pass 100 %)"
        )
        print(
            f"ratio if difair ran at its peak against this reference: {gf / (tflops['reference'] * 1e3):.2f}x"
        )
    if peak:
        print("peak GPU memory allocated (GiB): " + ", ".join(f"{k} {v:.2f}" for k, v in peak.items()))
    result = {
        "machine": machine,
        "loadavg_after": machine_after,
        "args": {k: str(v) for k, v in vars(args).items()},
        "images_per_s": ips,
        "median": med,
        "ratio": ratio,
        "train_gflop_per_image": flops / 1e9,
        "achieved_tflops": tflops,
        "bf16_peak_tflops": peak_tf,
        "cpu_peak_gflops": cpu_peak[0] if cpu_peak else None,
        "cpu_peak_gflops_reference": ref_peak[0] if ref_peak else None,
        "difair_precision": resolved.precision,
        "difair_channels_last": resolved.channels_last,
        "auto": {"precision": resolved.auto.precision, "channels_last": resolved.auto.channels_last},
        "peak_gpu_memory_gib": peak,
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
