"""The Semantic Shift Benchmark (Vaze et al., ICLR 2022): its class splits and what its loaders share.

``ssb_splits.json`` (beside this file) holds the lists of sgvaze/osr_closed_set_all_you_need
(data/open_set_splits/*.pkl, commit 3258f05, MIT licence) verbatim, with their index conventions:

- ``cub``: class id of ``image_class_labels.txt`` (1..200) minus 1;
- ``aircraft``: position of the variant name in the sorted unique names of ``images_variant_{split}.txt``;
- ``scars``: class of the annotation ``.mat`` (1..196) minus 1;
- ``imagenet_winter21``: ImageNet-21K (winter21) wnids, unknown against all of ImageNet-1K.

Each dataset has one split: train on the known classes' training images, test on the known classes' test images
and every unknown class's test images (no balancing in Vaze's protocol: ``data.balance=none``). Evaluation reports
each difficulty against all known test images; ``Hard+Medium`` is what Vaze et al. report as Hard on the FGVC
datasets (their test script merges Medium into Hard). The top-level metrics are over all unknowns (their union).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from difair.config import DataConfig
from difair.errors import DifairError

SPLITS_FILE = Path(__file__).resolve().parent / "ssb_splits.json"
FGVC_DATASETS = ("cub", "aircraft", "scars")
IMAGENET_SSB = "imagenet-ssb"
SSB_DATASETS = (*FGVC_DATASETS, IMAGENET_SSB)  # one fixed split each (the SSB lists)
DIFFICULTIES = ("Easy", "Medium", "Hard")
HARD_MEDIUM = "Hard+Medium"  # Vaze et al.'s reported "Hard" on the FGVC datasets
SSB_SOURCE = "sgvaze/osr_closed_set_all_you_need data/open_set_splits (commit 3258f05), MIT licence"


@lru_cache(maxsize=1)
def ssb_splits() -> dict[str, Any]:
    """The verbatim split lists and their conventions (``ssb_splits.json``)."""
    return json.loads(SPLITS_FILE.read_text())


def ssb_known_classes(dataset: str) -> list[int]:
    """Known class indices of an FGVC SSB dataset (its index convention), in label order."""
    _check_fgvc(dataset)
    return list(ssb_splits()[dataset]["known_classes"])


def ssb_unknown_subsets(dataset: str) -> dict[str, list[int]]:
    """The unknown classes per difficulty (Easy, Medium, Hard) and ``Hard+Medium``, in the lists' order."""
    _check_fgvc(dataset)
    lists = ssb_splits()[dataset]["unknown_classes"]
    out = {d: list(lists[d]) for d in DIFFICULTIES}
    out[HARD_MEDIUM] = out["Hard"] + out["Medium"]
    return out


def ssb_all_unknown(subsets: dict[str, list[int]]) -> list[int]:
    """The union of the difficulties (Easy, Medium, Hard), each class once, in the lists' order."""
    seen: dict[int, None] = {}
    for d in DIFFICULTIES:
        for c in subsets.get(d, []):
            seen.setdefault(c, None)
    return list(seen)


def imagenet_ssb_unknown() -> dict[str, list[str]]:
    """ImageNet-SSB's unknown ImageNet-21K (winter21) wnids per difficulty (Easy, Hard)."""
    s = ssb_splits()["imagenet_winter21"]
    return {"Easy": list(s["easy_i21k_classes"]), "Hard": list(s["hard_i21k_classes"])}


def check_one_split(cfg: DataConfig, name: str) -> None:
    """The SSB datasets have one fixed split: refuse another ``data.split``."""
    if cfg.split != 0:
        raise DifairError(f"{name} has one fixed split (the SSB lists): drop --split (data.split)")


def ssb_meta(dataset: str, subsets: dict[str, list[int]]) -> dict[str, Any]:
    """What results.json records about the SSB split."""
    return {
        "ssb": {
            "source": SSB_SOURCE,
            "convention": ssb_splits()["conventions"].get(dataset, ""),
            "difficulties": {k: len(v) for k, v in subsets.items()},
        }
    }


def _check_fgvc(dataset: str) -> None:
    if dataset not in FGVC_DATASETS:
        raise DifairError(f"{dataset!r} is not an SSB dataset: choose one of {', '.join(FGVC_DATASETS)}")
