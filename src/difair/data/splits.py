"""Known/unknown class splits: which classes a split of a dataset knows (the lists: ``difair.data.split_lists``).

Family ``vaze``: the ARPL "splits_2020" lists used by Vaze et al. and the DIFAIR authors (default).
Known classes are relabelled 0..n_c-1 in list order. For CIFAR+N the unknown lists are CIFAR-100 fine labels;
its known classes are either the per-split lists (Vaze/ARPL) or the 4 vehicles (the DIFAIR authors, Neal et al.).
CIFAR10 splits 0 and 1 hold the same class set (inherited from ARPL, kept for comparability).

Family ``neal``: the Neal et al. (OSRCI) lists as corrected in CAC (Miller et al.): MNIST, SVHN, CIFAR10,
CIFAR+10 (vehicles known, animal CIFAR-100 unknowns) and TinyImageNet; no CIFAR+50 (see below).
"""

from __future__ import annotations

from difair.config import SPLIT_FAMILIES, DataConfig, is_folder
from difair.data.split_lists import (
    CIFAR_PLUS_UNKNOWN,
    CIFAR_PLUS_UNKNOWN_LISTS,
    CIFAR_VEHICLES,
    KNOWN_LISTS,
    NEAL_CIFAR_PLUS_UNKNOWN,
    NEAL_KNOWN,
    NUM_SPLITS,
    VAZE_KNOWN,
)
from difair.data.ssb import SSB_DATASETS
from difair.errors import DifairError

__all__ = [  # the lists are re-exported: importers read them from here
    "CIFAR_PLUS_UNKNOWN",
    "CIFAR_VEHICLES",
    "NEAL_CIFAR_PLUS_UNKNOWN",
    "NEAL_KNOWN",
    "NUM_SPLITS",
    "VAZE_KNOWN",
    "check_split",
    "check_split_family",
    "get_cifar_plus_unknown",
    "get_known_classes",
    "get_unknown_digits",
    "split_count",
]


def split_count(dataset: str) -> int:
    """How many splits ``dataset`` has: one for a folder (its known classes are data.known) and for the SSB
    datasets (their fixed lists), ``NUM_SPLITS`` for the rest."""
    return 1 if is_folder(dataset) or dataset in SSB_DATASETS else NUM_SPLITS


def check_split_family(cfg: DataConfig) -> None:
    """Refuse a split family other than the default for a new run on a dataset without split families (a folder,
    the SSB datasets: their classes come from data.known or the SSB lists), which would record a choice that
    trained nothing."""
    if cfg.split_family != DataConfig.split_family and split_count(cfg.name) == 1:
        raise DifairError(
            f"data.split_family={cfg.split_family} chooses among the split lists of the Table 1 datasets; "
            f"{cfg.name} has no split lists of that family: drop --set data.split_family"
        )


def check_split(split: int) -> None:
    """Raise ``DifairError`` unless ``split`` is one of the ``NUM_SPLITS`` splits."""
    if not isinstance(split, int) or not 0 <= split < NUM_SPLITS:
        raise DifairError(f"split {split!r} is out of range: choose 0 to {NUM_SPLITS - 1}")


def _family(tables: dict, family: str) -> dict:
    if family not in tables:
        raise DifairError(f"unknown split family {family!r}: choose {' or '.join(SPLIT_FAMILIES)}")
    return tables[family]


def get_known_classes(
    dataset: str,
    split: int,
    family: str = DataConfig.split_family,
    cifar_plus_known: str = DataConfig.cifar_plus_known,
) -> list[int]:
    """Known class indices (source-dataset labels) of ``dataset``'s split, in label order."""
    check_split(split)
    key = "cifar+" if dataset.startswith("cifar+") else dataset
    if key == "cifar+" and cifar_plus_known == "vehicles":
        return list(CIFAR_VEHICLES)
    table = _family(KNOWN_LISTS, family)
    if key not in table:
        raise DifairError(
            f"split family {family!r} has no lists for {dataset!r}: use --set data.split_family=vaze"
        )
    return list(table[key][split])


def get_unknown_digits(dataset: str, split: int, family: str = DataConfig.split_family) -> list[int]:
    """The unknown classes of a ten-class dataset's split (MNIST, SVHN, CIFAR10, digits): the classes it does
    not know, ascending."""
    known = get_known_classes(dataset, split, family)
    return [c for c in range(10) if c not in known]


def get_cifar_plus_unknown(n: int, split: int, family: str = DataConfig.split_family) -> list[int]:
    """CIFAR-100 fine labels of the unknown classes of CIFAR+``n`` (10 or 50)."""
    check_split(split)
    if n not in CIFAR_PLUS_UNKNOWN:
        raise DifairError(f"CIFAR+{n} does not exist: choose cifar+10 or cifar+50")
    table = _family(CIFAR_PLUS_UNKNOWN_LISTS, family)
    if n not in table:
        raise DifairError(
            f"split family {family!r} has no lists for 'cifar+{n}': use --set data.split_family=vaze"
        )
    return list(table[n][split])
