"""Table 1 of the DIFAIR paper (Christoffel et al., KES 2024, section 4.4): closed-set accuracy / AUROC in percent.

Means over the five splits of each benchmark, 600 epochs per run. "MLS [Vaze]" is the number the paper quotes
from Vaze et al. (no accuracy given). The CAC row uses re-centred anchors (docs/fidelity.md row 7).
"""

from __future__ import annotations

PaperCell = tuple[float | None, float]  # (accuracy %, AUROC %); accuracy None where the paper gives none

TABLE1: dict[str, dict[str, PaperCell]] = {
    "mnist": {"MSP": (99.8, 99.32), "MLS": (99.8, 99.55), "MLS [Vaze]": (None, 99.3),
              "CAC": (99.81, 99.11), "DIFAIR": (99.81, 98.35)},
    "svhn": {"MSP": (97.7, 95.38), "MLS": (97.7, 96.66), "MLS [Vaze]": (None, 97.1),
             "CAC": (98.11, 96.61), "DIFAIR": (98.04, 95.45)},
    "cifar10": {"MSP": (96.28, 89.78), "MLS": (96.28, 92.55), "MLS [Vaze]": (None, 93.6),
                "CAC": (96.42, 86.43), "DIFAIR": (96.35, 85.04)},
    "cifar+10": {"MSP": (96.02, 89.60), "MLS": (96.02, 91.10), "MLS [Vaze]": (None, 97.9),
                 "CAC": (96.20, 86.03), "DIFAIR": (95.82, 83.86)},
    "cifar+50": {"MSP": (96.48, 90.13), "MLS": (96.48, 92.53), "MLS [Vaze]": (None, 96.5),
                 "CAC": (96.43, 87.28), "DIFAIR": (96.49, 84.52)},
    "tinyimagenet": {"MSP": (74.48, 73.24), "MLS": (74.48, 73.87), "MLS [Vaze]": (None, 83.0),
                     "CAC": (77.68, 67.65), "DIFAIR": (76.06, 73.38)},
}  # fmt: skip

# (our method, our score) -> the paper's row.
PAPER_ROW: dict[tuple[str, str], str] = {
    ("difair", "min_distance"): "DIFAIR",
    ("ce", "msp"): "MSP",
    ("ce", "mls"): "MLS",
    ("cac", "cac"): "CAC",
}
VAZE_ROW = "MLS [Vaze]"
PAPER_EPOCHS = 600
PAPER_SOURCE = "Christoffel et al., DIFAIR (KES 2024), Table 1: 5 splits x 600 epochs"


# The settings behind Table 1's numbers where a run may differ: (fidelity key, the paper's value, which
# datasets/methods/scores it concerns (None: all), what differs). The paper's Tiny ImageNet classes are those of
# the authors' wnids.txt order (its section 5.1 names "reel" on split 0), its CIFAR+N knowns the four vehicles,
# its CAC row re-centred anchors, its splits the Vaze family (docs/fidelity.md rows 7, 16-18).
PAPER_SETTINGS: tuple[tuple[str, str, tuple[str, ...] | None, tuple[str, ...] | None, str], ...] = (
    ("split_family", "vaze", None, None, "the paper used the vaze split lists"),
    ("tinyimagenet_order", "wnids", ("tinyimagenet",), None,
     "the paper's Tiny ImageNet classes are those of the wnids.txt order (data.tinyimagenet_order=wnids)"),
    ("cifar_plus_known", "vehicles", ("cifar+10", "cifar+50"), None,
     "the paper's CIFAR+N known classes are the four vehicles (data.cifar_plus_known=vehicles)"),
    ("cac_recenter", "true", None, ("cac",), "the paper's CAC number uses re-centred anchors (cac.recenter=true)"),
)  # fmt: skip


def paper_differences(dataset: str, score: str, fidelity: dict[str, object]) -> list[str]:
    """Why the paper's number beside a row of ``dataset`` and ``score`` comes from another setting than the run's
    (its ``results.json`` ``"fidelity"`` record); empty when the settings agree."""
    out = []
    for key, paper, datasets, scores, why in PAPER_SETTINGS:
        value = fidelity.get(key)
        if value is None or (datasets and dataset not in datasets) or (scores and score not in scores):
            continue
        if str(value).lower() != paper:
            out.append(why)
    return out


def paper_dataset(dataset: str) -> str | None:
    """The Table 1 column of one of our dataset names (None for digits, folder:PATH)."""
    return dataset if dataset in TABLE1 else None


def paper_cell(dataset: str, method: str, score: str) -> tuple[str, PaperCell] | None:
    """The paper's (row label, (acc, AUROC)) beside our (dataset, method, score), or None."""
    row = PAPER_ROW.get((method, score))
    ds = paper_dataset(dataset)
    if row is None or ds is None:
        return None
    return row, TABLE1[ds][row]


def vaze_mls_auroc(dataset: str, method: str, score: str) -> float | None:
    """Vaze et al.'s MLS AUROC as quoted in Table 1, beside our CE/MLS rows only."""
    ds = paper_dataset(dataset)
    if (method, score) != ("ce", "mls") or ds is None:
        return None
    return TABLE1[ds][VAZE_ROW][1]
