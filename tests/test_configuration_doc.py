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
