"""Training images too large for memory: decoded per batch from their files (``data.cache=stream``).

``StreamImages`` has the part of a uint8 tensor ``[N, C, S, S]``'s interface that the data code and the training
loop use (``len``, ``shape``, ``dtype``, ``dim``, ``to``, ``contiguous``, indexing by int, slice or index tensor),
but holds only file names. Each image is decoded as the decode-once cache does it (``difair.data.cache``: RGB, a
bilinear resize to ``decode_size``) and centre-cropped to ``S``, so both modes give the same pixels.
``prefetch(batches)`` wraps the loop's index batches: a ``DataLoader`` decodes the batches in ``workers``
processes in exactly that order, a few batches ahead, and indexing with the batch the loop asks for next returns
the decoded one. The order comes from the loop's seeded permutation and the workers draw no random numbers, so
a seed gives the same batches in either mode.

``difair.data.folder.resolve_cache`` chooses ``memory`` or ``stream`` for ``data.cache=auto`` once per run (the decoded training
pixels against ``data.memory_budget_gb``, by default ``MEMORY_BUDGET_FRACTION`` of the RAM available when the run
starts) and records why in ``cfg.auto.cache``, as ``precision=auto`` is recorded.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from difair.config import MEMORY_BUDGET_FRACTION, DataConfig
from difair.cpus import usable_cores
from difair.data.cache import decode_image, source_fingerprint


def default_workers(cpus: int | None = None) -> int:
    """``data.workers=null``: one decoding process per CPU but one, at most 8 (0, in the loop, on one CPU).
    ``cpus``: the CPUs the training process may keep busy (the engine passes its share when processes train side
    by side, ``engine.threads.process_cpus``); default: the usable CPUs (``difair.cpus.usable_cores``)."""
    return max(0, min(8, (usable_cores() if cpus is None else cpus) - 1))


class _Decoder(torch.utils.data.Dataset):
    """Map-style dataset whose item is a whole batch: a list of indices -> uint8 ``[B, C, S, S]``."""

    def __init__(self, images: StreamImages):
        self.files, self.decode_size, self.size, self.mode = (
            images.files,
            images.decode_size,
            images.size,
            images.mode,
        )

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, idx: Sequence[int]) -> Tensor:
        c = 3 if self.mode == "RGB" else 1
        out = np.empty((len(idx), c, self.size, self.size), dtype=np.uint8)
        top = int(round((self.decode_size - self.size) / 2.0))  # base.center_crop's (torchvision's) rounding
        for k, i in enumerate(idx):  # the cache's decoding, then build_osr's centre crop
            arr = decode_image(self.files[int(i)], self.decode_size, self.mode)
            out[k] = arr[:, top : top + self.size, top : top + self.size]
        return torch.from_numpy(out)


class StreamImages:
    """Images ``[N, C, size, size]`` decoded from ``files`` when indexed (see the module docstring)."""

    dtype = torch.uint8

    def __init__(
        self,
        files: Sequence[str],
        decode_size: int,
        size: int,
        mode: str = "RGB",
        workers: int | None = None,
        device: torch.device | str = "cpu",
    ):
        if not 0 < size <= decode_size:
            raise ValueError(f"size {size} must be in (0, decode_size {decode_size}]")
        self.files = list(files)
        self.decode_size, self.size, self.mode = decode_size, size, mode
        self.workers = default_workers() if workers is None else workers
        self.device = torch.device(device)
        self._ready: tuple[Tensor, Tensor] | None = None  # (indices, decoded batch) the loop asks for next

    # ------------------------------------------------------------------ the tensor interface the code uses
    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.files), 3 if self.mode == "RGB" else 1, self.size, self.size))

    def dim(self) -> int:
        return 4

    def numel(self) -> int:
        return int(torch.Size(self.shape).numel())

    def __len__(self) -> int:
        return len(self.files)

    def contiguous(self, *args: Any, **kwargs: Any) -> StreamImages:
        return self

    def fingerprint(self) -> str:
        """What the images are without decoding them: the files (paths, sizes, modification times) and how they
        are decoded (what a cache of their outputs is keyed by)."""
        return source_fingerprint(
            self.files, Path("/"), extra=f"stream|{self.mode}|{self.decode_size}|{self.size}"
        )

    def to(self, device: torch.device | str, *args: Any, **kwargs: Any) -> StreamImages:
        """The same images, decoded batches moved to ``device``."""
        other = StreamImages(self.files, self.decode_size, self.size, self.mode, self.workers, device)
        return other

    def subset(self, idx: Tensor | np.ndarray | Sequence[int]) -> StreamImages:
        """The images ``idx`` (nothing decoded)."""
        files = [self.files[int(i)] for i in torch.as_tensor(np.asarray(idx), dtype=torch.int64).tolist()]
        return StreamImages(files, self.decode_size, self.size, self.mode, self.workers, self.device)

    def decode(self, idx: Sequence[int]) -> Tensor:
        """The images ``idx`` decoded in this process, uint8 on ``device``."""
        return _Decoder(self)[list(idx)].to(self.device)

    def __getitem__(self, key: int | slice | Tensor | np.ndarray | Sequence[int]) -> Tensor:
        if isinstance(key, int):
            return self.decode([key])[0]
        if isinstance(key, slice):
            return self.decode(range(*key.indices(len(self))))
        idx = torch.as_tensor(np.asarray(key.cpu() if isinstance(key, Tensor) else key), dtype=torch.int64)
        ready = self._ready
        if ready is not None and torch.equal(ready[0], idx):
            self._ready = None
            return ready[1].to(self.device, non_blocking=True)
        return self.decode(idx.tolist())

    # ------------------------------------------------------------------ decoding ahead, in worker processes
    def _loader(self, plan: list[list[int]]) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(
            _Decoder(self),
            sampler=plan,  # type: ignore[arg-type]  # each item is one batch of indices
            batch_size=None,
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
            prefetch_factor=4 if self.workers else None,
            generator=torch.Generator(),  # its base seed is not drawn from the global RNG the run seeded
        )

    def prefetch(self, batches: Iterable[Tensor]) -> Iterator[Tensor]:
        """``batches`` unchanged, each one's images decoded ahead in worker processes for the next indexing."""
        plan = [torch.as_tensor(b).cpu().to(torch.int64) for b in batches]
        if not plan:
            return
        try:
            for idx, images in zip(plan, self._loader([p.tolist() for p in plan]), strict=True):
                self._ready = (idx, images)
                yield idx
        finally:
            self._ready = None

    def chunks(self, size: int) -> Iterator[Tensor]:
        """Every image in order, ``size`` at a time, decoded in the worker processes (on the CPU)."""
        plan = [list(range(i, min(i + size, len(self)))) for i in range(0, len(self), size)]
        yield from self._loader(plan) if plan else iter(())


def take(images: Tensor | StreamImages, idx: Tensor) -> Tensor | StreamImages:
    """``images[idx]`` for a tensor; the undecoded subset for ``StreamImages``."""
    return images.subset(idx) if isinstance(images, StreamImages) else images[idx]


# ---------------------------------------------------------------------- memory or stream
def available_memory() -> int:
    """Bytes of RAM available now (psutil when installed, else /proc/meminfo's MemAvailable)."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def memory_budget(cfg: DataConfig) -> tuple[int, str]:
    """The budget in bytes for resident training pixels and how it was set."""
    if cfg.memory_budget_gb is not None:
        return int(cfg.memory_budget_gb * 1e9), f"data.memory_budget_gb={cfg.memory_budget_gb:g}"
    avail = available_memory()
    return int(
        avail * MEMORY_BUDGET_FRACTION
    ), f"{MEMORY_BUDGET_FRACTION:g} of {avail / 1e9:.1f} GB available"


def choose_cache(cfg: DataConfig, decoded_bytes: int) -> tuple[str, str]:
    """``(memory | stream, why)`` for ``data.cache=auto`` and training pixels of ``decoded_bytes``."""
    budget, how = memory_budget(cfg)
    fits = decoded_bytes <= budget
    verb = "fit" if fits else "exceed"
    why = f"decoded training images {decoded_bytes / 1e9:.2f} GB {verb} the budget {budget / 1e9:.2f} GB ({how})"
    return ("memory" if fits else "stream"), why
