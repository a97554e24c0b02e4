"""What a trained run computes on a split of its data, kept in ``RUN/features/<name>.pt`` next to the checkpoint.

A cached file holds a key and tensors; it is used only while the key matches: the checkpoint (the run's config
digest and the epoch it holds) and the split's images (their shape and a sample of their bytes), plus what the
caller adds (e.g. whether ODIN's logits were extracted). Resuming the run, or other images under the same name,
changes the key and the file is computed again. A torn or foreign file is recomputed; a run folder that cannot be
written to (read-only, full) still gets the tensors, uncached.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import torch
from torch import Tensor

from difair.data.stream import StreamImages
from difair.engine import rundir as R
from difair.engine.evaluate import collect_outputs
from difair.engine.load import LoadedRun
from difair.errors import DifairError

FEATURES_DIR = R.FEATURES  # RUN/features/: the run-folder name lives in rundir
FEATURES_VERSION = 1
OUTPUTS_CACHE_MAX_BYTES = 256 << 20  # outputs of more images than this holds are computed each time, not kept


def cache_key(run: LoadedRun, images: Tensor | StreamImages, extra: str = "") -> str:
    """What a cached file depends on: the checkpoint, the images (a digest of a sample of their bytes; for images
    decoded as they stream, of their files), ``extra``."""
    h = hashlib.sha256()
    h.update(
        f"v{FEATURES_VERSION}|{run.config.digest()}|{run.state['epoch']}|{extra}|{tuple(images.shape)}".encode()
    )
    if isinstance(images, Tensor):
        h.update(images.contiguous().view(-1)[:: max(1, images.numel() // (1 << 20))].numpy().tobytes())
    else:  # a streamed folder: reading a sample of its bytes would decode it
        h.update(images.fingerprint().encode())
    return h.hexdigest()[:20]


def cached(
    run: LoadedRun,
    name: str,
    key: str,
    compute: Callable[[], dict[str, Tensor]],
    *,
    max_bytes: int | None = None,
    accept: Callable[[dict[str, Tensor]], bool] | None = None,
) -> dict[str, Tensor]:
    """``compute()``, read from ``RUN/features/<name>.pt`` when that file holds ``key`` (and its tensors pass
    ``accept``: a damaged file is recomputed); else computed and saved (unless the tensors are larger than
    ``max_bytes`` or the folder cannot be written)."""
    path = run.run_dir / FEATURES_DIR / f"{name}.pt"
    if path.is_file():
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            if (
                isinstance(saved, dict)
                and saved.get("key") == key
                and (accept is None or accept(saved["tensors"]))
            ):
                return saved["tensors"]
        except Exception:  # a torn or foreign cache file is rebuilt
            pass
    tensors = compute()
    size = sum(t.numel() * t.element_size() for t in tensors.values())
    if max_bytes is None or size <= max_bytes:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            R.save_checkpoint(path, {"key": key, "tensors": tensors})  # atomic: temp file and rename
        except (OSError, DifairError):  # a read-only or full run folder: the tensors are still good
            pass
    return tensors


def cached_outputs(
    run: LoadedRun, name: str, images: Tensor, *, batch_size: int, device: torch.device
) -> Tensor:
    """The run's fp32 outputs (``collect_outputs``) of ``images``, kept in ``RUN/features/outputs-<name>.pt``."""

    def compute() -> dict[str, Tensor]:
        return {"outputs": collect_outputs(run.model, images, batch_size, device)}

    def accept(saved: dict[str, Tensor]) -> bool:  # one finite row per image: else a damaged file
        out = saved.get("outputs")
        return (
            isinstance(out, Tensor)
            and out.dim() == 2
            and len(out) == len(images)
            and bool(out.isfinite().all())
        )

    key = cache_key(run, images, "outputs")
    return cached(run, f"outputs-{name}", key, compute, max_bytes=OUTPUTS_CACHE_MAX_BYTES, accept=accept)[
        "outputs"
    ]


__all__ = [
    "FEATURES_DIR",
    "FEATURES_VERSION",
    "OUTPUTS_CACHE_MAX_BYTES",
    "cache_key",
    "cached",
    "cached_outputs",
]
