"""What the config digest hashes: the options that determine what a run trains, and the rules that keep the
digests of older run folders stable (``TrainConfig.digest``, ``identity``)."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def config_hash(identity: dict[str, Any]) -> str:
    """SHA-256 (16 hex digits) of a config identity, key order aside: the config digest."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested dict as dotted keys."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


# Options added after difair 0.1.0, each with the values that do what runs did before the option existed. A
# config holding one of them is hashed without the option, so the config digest of a run folder written by an
# older version still matches its checkpoint (tests/test_digest_compat.py checks 0.1.0's digests).
DIGEST_NEUTRAL: dict[str, tuple[Any, ...]] = {
    "data.crop_pct": (None, 1.0),  # None: unresolved (resolves to 1.0 without pretrained weights)
    "model.pretrained": (False,),
    "model.weights": (None,),
    "model.freeze_backbone": (False,),
    "model.backbone_lr_scale": (1.0,),
    "ce.label_smoothing_form": ("pytorch",),
    "augment.crop": ("pad",),
    "augment.crop_scale": ([0.08, 1.0],),
    "augment.crop_ratio": ([3 / 4, 4 / 3],),
}

# Options read by some datasets alone (the name prefixes), and the value the digest hashes for every other dataset:
# their value under difair 0.1.0, so that a change of their default (cifar_plus_known: split -> vehicles) moves the
# digests of the runs it concerns and of no others (tests/test_digest_compat.py).
DATASET_OPTIONS: dict[str, tuple[tuple[str, ...], Any]] = {
    "data.cifar_plus_known": (("cifar+",), "split"),
}

# How a run computes, not what it learns: left out of the config digest, so a run folder is found again and
# resumes under other execution choices.
EXECUTION_OPTIONS = (
    "accelerator",
    "devices",
    "eval_batch_size",
    "compile",
    "cpu_allocator",
    "cpu_threads",
    "logging",
)
