"""How a benchmark table writes its cells: which metrics it shows, in percent, mean ± std."""

from __future__ import annotations

from typing import Any

OURS = ("closed_set_accuracy", "auroc", "oscr")
SHORT = {"closed_set_accuracy": "acc", "auroc": "auroc", "oscr": "oscr"}


def pct(v: float | None) -> str:
    """A fraction in percent, two decimals; ``-`` for none."""
    return "-" if v is None else f"{100 * v:.2f}"


def mean_std(row: dict[str, Any], metric: str) -> str:
    """A row's metric as ``mean ± std`` in percent; ``-`` when the row has none."""
    m = row.get(metric)
    return "-" if m is None else f"{100 * m['mean']:.2f} ± {100 * m['std']:.2f}"


def csv_pct(v: float | None) -> str:
    """A fraction in percent for the CSV tables, four decimals; empty for none."""
    return "" if v is None else f"{100 * v:.4f}"
