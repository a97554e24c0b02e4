"""The known/unknown class lists of the Table 1 datasets, verbatim, per split family (``difair.data.splits``
reads them). Family ``vaze``: the ARPL "splits_2020" lists used by Vaze et al. and the DIFAIR authors; family
``neal``: Neal et al.'s (OSRCI) lists as corrected in CAC (Miller et al.)."""

from __future__ import annotations

NUM_SPLITS = 5

VAZE_KNOWN: dict[str, list[list[int]]] = {
    "mnist": [
        [2, 4, 5, 9, 8, 3],
        [3, 2, 6, 9, 4, 0],
        [5, 8, 3, 2, 4, 6],
        [3, 7, 8, 4, 0, 5],
        [6, 3, 4, 9, 8, 2],
    ],
    "svhn": [
        [5, 3, 7, 2, 8, 6],
        [3, 8, 7, 6, 2, 5],
        [8, 9, 4, 7, 2, 1],
        [3, 8, 2, 5, 0, 6],
        [4, 9, 2, 7, 1, 0],
    ],
    "cifar10": [
        [0, 6, 4, 9, 1, 7],
        [7, 6, 4, 9, 0, 1],
        [1, 5, 7, 3, 9, 4],
        [8, 6, 1, 9, 0, 7],
        [2, 4, 1, 7, 9, 6],
    ],
    "cifar+": [[4, 7, 9, 1], [6, 7, 1, 9], [9, 6, 1, 7], [6, 4, 9, 1], [1, 0, 9, 8]],
    "tinyimagenet": [
        [108, 147, 17, 58, 193, 123, 72, 144, 75, 167, 134, 14, 81, 171, 44, 197, 152, 66, 1, 133],
        [198, 161, 91, 59, 57, 134, 61, 184, 90, 35, 29, 23, 199, 38, 133, 19, 186, 18, 85, 67],
        [177, 0, 119, 26, 78, 80, 191, 46, 134, 92, 31, 152, 27, 60, 114, 50, 51, 133, 162, 93],
        [98, 36, 158, 177, 189, 157, 170, 191, 82, 196, 138, 166, 43, 13, 152, 11, 75, 174, 193, 190],
        [95, 6, 145, 153, 0, 143, 31, 23, 189, 81, 20, 21, 89, 26, 36, 170, 102, 177, 108, 169],
    ],
}
VAZE_KNOWN["digits"] = VAZE_KNOWN["mnist"]

CIFAR_VEHICLES = [0, 1, 8, 9]

# fmt: off
CIFAR_PLUS_UNKNOWN: dict[int, list[list[int]]] = {
    10: [
        [30, 25, 1, 9, 8, 0, 46, 52, 49, 71],
        [41, 9, 49, 40, 73, 60, 48, 30, 95, 71],
        [8, 9, 49, 40, 73, 60, 48, 95, 30, 71],
        [95, 60, 30, 73, 46, 49, 68, 99, 8, 71],
        [33, 2, 3, 97, 46, 21, 64, 63, 88, 43],
    ],
    50: [
        [27, 94, 29, 77, 88, 26, 69, 48, 75, 5, 59, 93, 39, 57, 45, 40, 78, 20, 98, 47, 66, 70, 91, 76, 41, 83, 99, 32, 53, 72, 2, 95, 21, 73, 84, 68, 35, 11, 55, 60, 30, 25, 1, 9, 8, 0, 46, 52, 49, 71],
        [65, 97, 86, 24, 45, 67, 2, 3, 91, 98, 79, 29, 62, 82, 33, 76, 0, 35, 5, 16, 54, 11, 99, 52, 85, 1, 25, 66, 28, 84, 23, 56, 75, 46, 21, 72, 55, 68, 8, 69, 41, 9, 49, 40, 73, 60, 48, 30, 95, 71],
        [20, 83, 65, 97, 94, 2, 93, 16, 67, 29, 62, 33, 24, 98, 5, 86, 35, 54, 0, 91, 52, 66, 85, 84, 56, 11, 1, 76, 25, 55, 21, 99, 72, 41, 23, 75, 28, 68, 69, 46, 8, 9, 49, 40, 73, 60, 48, 95, 30, 71],
        [92, 82, 77, 64, 5, 33, 62, 56, 70, 0, 20, 28, 67, 14, 84, 53, 91, 29, 85, 2, 52, 83, 75, 35, 11, 21, 72, 98, 55, 1, 41, 76, 25, 66, 69, 9, 48, 54, 40, 23, 95, 60, 30, 73, 46, 49, 68, 99, 8, 71],
        [47, 6, 19, 0, 62, 93, 59, 65, 54, 70, 34, 55, 23, 38, 72, 76, 53, 31, 78, 96, 77, 27, 92, 18, 82, 50, 98, 32, 1, 75, 83, 4, 51, 35, 80, 11, 74, 66, 36, 42, 33, 2, 3, 97, 46, 21, 64, 63, 88, 43],
    ],
}
# fmt: on

# Neal et al. (OSRCI) / CAC family. MNIST, SVHN and CIFAR10 share one list of *unknown* classes per split
# (lwneal/counterfactual-open-set generativeopenset/datasets/download_{cifar10,svhn}.py, and download_mnist.py
# as kept in its forks; dimitymiller/cac-openset datasets/<DS>/class_splits/<k>.json at commit 6b43b4e,
# "correct dataset splits to match those used by [13]"); known = the other six, ascending (as CAC's "Known").
NEAL_CIFAR10_UNKNOWN = [[3, 6, 7, 8], [1, 2, 4, 6], [2, 3, 4, 9], [0, 1, 2, 6], [4, 5, 6, 9]]
_NEAL_DIGITS = [[c for c in range(10) if c not in u] for u in NEAL_CIFAR10_UNKNOWN]

# CAC (cac-openset@6b43b4e) TinyImageNet/class_splits/<k>.json "Known", in file order. CAC indexes classes
# with torchvision ImageFolder over train/, i.e. sorted wnids (data.tinyimagenet_order=sorted).
NEAL_TINYIMAGENET_KNOWN = [
    [192, 112, 145, 107, 91, 180, 144, 193, 10, 125, 186, 28, 72, 124, 54, 77, 157, 169, 104, 166],
    [156, 157, 167, 175, 153, 11, 147, 0, 199, 171, 132, 60, 87, 190, 101, 111, 193, 71, 131, 192],
    [28, 15, 103, 33, 90, 167, 61, 13, 124, 159, 49, 12, 54, 78, 82, 107, 80, 25, 140, 46],
    [128, 132, 123, 72, 154, 35, 86, 10, 188, 28, 85, 89, 91, 82, 116, 65, 96, 41, 134, 25],
    [102, 79, 47, 106, 59, 93, 145, 10, 62, 175, 76, 183, 48, 130, 38, 186, 44, 8, 29, 26],
]

NEAL_KNOWN: dict[str, list[list[int]]] = {
    "mnist": _NEAL_DIGITS,
    "digits": _NEAL_DIGITS,
    "svhn": _NEAL_DIGITS,
    "cifar10": _NEAL_DIGITS,
    "cifar+": [list(CIFAR_VEHICLES) for _ in range(NUM_SPLITS)],
    "tinyimagenet": NEAL_TINYIMAGENET_KNOWN,
}

# CAC (cac-openset@6b43b4e) CIFAR+10/class_splits/<k>.json "Unknown" (CIFAR-100 fine labels, animals only).
# CIFAR+50 is left out: its corrected lists could not be read verbatim (only split 3 survives in our sources).
NEAL_CIFAR_PLUS_UNKNOWN: dict[int, list[list[int]]] = {
    10: [
        [31, 65, 45, 98, 77, 93, 34, 63, 26, 44],
        [11, 97, 98, 75, 66, 77, 95, 99, 93, 7],
        [11, 24, 15, 95, 93, 34, 32, 88, 63, 2],
        [11, 1, 64, 42, 45, 38, 66, 67, 63, 44],
        [19, 42, 21, 78, 98, 72, 15, 46, 66, 3],
    ],
}

# The lists of each family (keyed by difair.config.SPLIT_FAMILIES; tests/data/test_data_splits.py checks the keys).
KNOWN_LISTS: dict[str, dict[str, list[list[int]]]] = {"vaze": VAZE_KNOWN, "neal": NEAL_KNOWN}
CIFAR_PLUS_UNKNOWN_LISTS: dict[str, dict[int, list[list[int]]]] = {
    "vaze": CIFAR_PLUS_UNKNOWN,
    "neal": NEAL_CIFAR_PLUS_UNKNOWN,
}
