"""Names of a package imported on first use, so that importing the package (and the CLI) stays light."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports ``package.<exports[name]>`` when ``name`` is first read."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)

    return __getattr__


def lazy_dir(namespace: Mapping[str, Any], exports: Mapping[str, str]) -> Callable[[], list[str]]:
    """A module ``__dir__`` that lists the lazily imported names beside those already defined (``dir()``, help and
    tab completion show them before their first use)."""

    def __dir__() -> list[str]:
        return sorted({*namespace, *exports})

    return __dir__
