"""Argument types and name checks of the command line: one line naming the fix for a bad value."""

from __future__ import annotations

import argparse
import math

from difair.errors import DifairError


def check_method_name(name: str) -> None:
    """Raise ``DifairError`` naming the registered methods when ``name`` is none of them."""
    from difair.methods import check_method_name as check  # start-up time: imports torch

    check(name)


def parse_methods(text: str | None) -> list[str]:
    """Comma-separated method names (each checked); None: every registered method."""
    from difair.methods import check_method_name, method_names  # start-up time: imports torch

    if text is None:
        return list(method_names())
    names = parse_names(text, "methods")
    for name in names:
        check_method_name(name)
    return names


def parse_names(text: str, what: str) -> list[str]:
    """Comma-separated names without repeats; at least one."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise DifairError(
            f"--{what} needs at least one name, e.g. --{what} {'difair,ce,cac' if what == 'methods' else 'mnist'}"
        )
    return list(dict.fromkeys(items))


def check_dataset_name(name: str) -> None:
    """Raise ``DifairError`` naming the registered datasets when ``name`` is none of them."""
    from difair.data import check_dataset_name as check  # start-up time: imports torch

    check(name)


def finite_float(text: str) -> float:
    """argparse type: a finite number (``nan`` and ``inf`` are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def _whole(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be >= {least}, got {value}")
    return value


def count(text: str) -> int:
    """argparse type: a whole number >= 0."""
    return _whole(text, 0)


def positive(text: str) -> int:
    """argparse type: a whole number >= 1."""
    return _whole(text, 1)


def parse_splits(text: str | None) -> list[int]:
    """``"0-4"``, ``"0,2,3"`` or ``"1"`` -> list of split indices; None: every split (``NUM_SPLITS``)."""
    from difair.data.splits import NUM_SPLITS, check_split  # start-up time: imports torch

    if text is None:
        return list(range(NUM_SPLITS))
    out: list[int] = []
    try:
        for part in text.split(","):
            if "-" in part:
                a, b = part.split("-", 1)
                if int(b) < int(a):
                    raise DifairError(
                        f"split range {part!r} runs backwards: write it as {b.strip()}-{a.strip()}"
                    )
                out.extend(range(int(a), int(b) + 1))
            elif part.strip():
                out.append(int(part))
    except ValueError as exc:
        raise DifairError(f"cannot read splits {text!r}: write e.g. 0-{NUM_SPLITS - 1} or 0,2,3") from exc
    if not out:
        raise DifairError(f"no splits in {text!r}: write e.g. 0-{NUM_SPLITS - 1} or 0,2,3")
    for s in out:
        check_split(s)
    return out
