"""Data-parallel training of one run (DDP through Lightning Fabric): seeds, reductions and the sync check.

Semantics (``devices = W > 1``): every process holds the whole uint8 training set and draws the same epoch
permutation; global batch ``i`` is the single-process batch ``perm[i*B:(i+1)*B]`` and process ``r`` trains on
its samples ``r, r+W, ...`` (``B / W`` per process). DDP averages the gradients, so a step follows the mean
loss over the whole global batch, as in one process, except that BatchNorm normalises with per-process batch
statistics (``B / W`` samples; running statistics are rank 0's, which DDP broadcasts before each forward).
Augmentation and dropout draw from per-rank seeds (rank 0 keeps the single-process seeds). Only rank 0 writes
the run folder and evaluates; its results are broadcast so every process returns them.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch
from torch import Tensor, nn


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank ``rank``'s augmentation and dropout; rank 0 keeps ``seed`` (single-process runs)."""
    return seed if rank == 0 else (seed * 1_000_003 + rank * 104_729 + 17) % (2**63 - 1)


def is_rank_zero() -> bool:
    """True in the process that writes output (rank 0, or the only process)."""
    from lightning_fabric.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


def reduce_epoch_sums(
    fabric: Any, sums: dict[str, Tensor], correct: Tensor, seen: int
) -> tuple[dict[str, Tensor], Tensor, int]:
    """Sum the per-process loss sums, correct predictions and sample counts over all processes."""
    keys = list(sums)
    flat = torch.stack(
        [*(sums[k].float().reshape(()) for k in keys), correct.float(), torch.tensor(float(seen))]
    )
    total = fabric.all_reduce(flat.to(fabric.device), reduce_op="sum").cpu()
    return {k: total[i] for i, k in enumerate(keys)}, total[-2], int(total[-1].item())


def parameter_digest(model: nn.Module) -> str:
    """SHA-256 (16 hex digits) of every parameter's bytes, in order: equal across ranks iff they are in sync."""
    h = hashlib.sha256()
    for name, p in model.named_parameters():
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def gather_digests(model: nn.Module) -> list[str]:
    """Every rank's parameter digest, in rank order (all processes must call it)."""
    import torch.distributed as dist

    mine = parameter_digest(model)
    if not (dist.is_available() and dist.is_initialized()):
        return [mine]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, mine)
    return [str(d) for d in out]
