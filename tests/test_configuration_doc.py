"""docs/configuration.md lists every option of TrainConfig with its default, so the page cannot go stale."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from difair.config import TrainConfig

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def _leaves(d: dict, prefix: str = ""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _leaves(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def _rows() -> dict[str, str]:
    """key -> default cell of every table row ``| `key` | `default` | meaning |``."""
    rows = {}
    for line in DOC.read_text().splitlines():
        m = re.match(r"\| `([a-z_+.]+)` \| `([^`]*)` \|", line)
        if m:
            rows[m.group(1)] = m.group(2)
    return rows


def test_every_option_is_documented_with_its_default():
    rows = _rows()
    options = dict(_leaves(TrainConfig().to_dict()))
    assert sorted(set(options) - set(rows)) == [], "options missing from docs/configuration.md"
    assert sorted(set(rows) - set(options)) == [], "docs/configuration.md lists options that do not exist"
    for key, default in options.items():
        cell = float(rows[key]) if isinstance(default, float) else yaml.safe_load(rows[key])
        assert cell == default, (key, rows[key], default)


def _meaning(key: str) -> str:
    for line in DOC.read_text().splitlines():
        if line.startswith(f"| `{key}` |"):
            return line.split("|", 3)[3]
    raise AssertionError(f"{key} has no row")


def test_every_choice_of_an_option_is_named_in_its_row():
    from difair.config import CHOICES
    from difair.data import available_datasets
    from difair.methods.cac import CACConfig
    from difair.methods.ce import LABEL_SMOOTHING_FORMS
    from difair.nn import functional as DF

    choices = {
        **CHOICES,
        "difair.loss_mode": DF.LOSS_MODES,
        "difair.corr_variant": DF.CORR_VARIANTS,
        "cac.rejection_softmin": DF.CAC_SOFTMIN,
        "ce.label_smoothing_form": LABEL_SMOOTHING_FORMS,
    }
    assert CACConfig().rejection_softmin in DF.CAC_SOFTMIN
    choices["data.name"] = tuple(available_datasets())
    for key, words in choices.items():
        meaning = _meaning(key)
        missing = [w for w in words if f"`{w}`" not in meaning]
        assert missing == [], f"docs/configuration.md's {key} row does not name {missing}"


def test_each_fidelity_choice_names_its_row_of_docs_fidelity():
    from difair.config import FIDELITY

    rows = {}
    for line in (DOC.parent / "fidelity.md").read_text().splitlines():
        m = re.match(r"\| (\d+) \|", line)
        if m:
            rows[int(m.group(1))] = line
    for c in FIDELITY:  # results.json's record points readers at the row: it must be the row of that option
        assert f"`{c.option}`" in rows[c.row], (
            f"docs/fidelity.md row {c.row} does not name {c.option} ({c.key})"
        )
