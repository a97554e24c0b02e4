"""Fonts for any script: text the default font cannot draw (CJK class names, ...) gets an installed font that can.

At draw time every text of a figure is checked against matplotlib's default font; for characters it lacks, the
installed fonts (``matplotlib.font_manager``) are searched for ones that have them, and those become the text's
fallback fonts (matplotlib falls back glyph by glyph). No font is required: when none has a character, one
warning names the characters that draw as boxes, instead of matplotlib's warning per glyph.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Iterator

from matplotlib import font_manager, rcParams
from matplotlib.figure import Figure
from matplotlib.ft2font import FT2Font
from matplotlib.text import Text

# tried first, in this order, when they are installed: wide coverage of CJK and other scripts
PREFERRED = (
    "Noto Sans CJK JP",
    "Noto Sans CJK SC",
    "Noto Sans CJK",
    "Source Han Sans",
    "Noto Sans",
    "WenQuanYi",
)

# fonts whose glyphs are placeholders for whole Unicode blocks (matplotlib >= 3.10 bundles LastResortHE)
PLACEHOLDER_FONTS = ("Last Resort",)


@functools.cache
def _charmap(path: str) -> frozenset[int]:
    """The code points a font file has glyphs for (empty when it cannot be read)."""
    try:
        return frozenset(FT2Font(path).get_charmap())
    except (OSError, RuntimeError, ValueError):
        return frozenset()


def _default_chars() -> frozenset[int]:
    return _charmap(font_manager.findfont(font_manager.FontProperties(family=rcParams["font.family"])))


def _candidates() -> list[font_manager.FontEntry]:
    """Installed regular-weight upright fonts, the preferred families first (one entry per family)."""
    seen: dict[str, font_manager.FontEntry] = {}
    for f in font_manager.fontManager.ttflist:
        if f.name.startswith(PLACEHOLDER_FONTS):  # maps every code point to a box: it covers nothing
            continue
        if f.style == "normal" and f.weight in (400, "normal", "regular") and f.name not in seen:
            seen[f.name] = f

    def rank(f: font_manager.FontEntry) -> tuple[int, str]:
        hits = [i for i, p in enumerate(PREFERRED) if f.name.startswith(p)]
        return (hits[0] if hits else len(PREFERRED), f.name)

    return sorted(seen.values(), key=rank)


def fallback_fonts(chars: set[int]) -> tuple[list[str], set[int]]:
    """Font family names that together cover ``chars`` (which the default font lacks), and what none covers."""
    names: list[str] = []
    missing = set(chars)
    for f in _candidates():
        if not missing:
            break
        have = missing & _charmap(f.fname)
        if have:
            names.append(f.name)
            missing -= have
    return names, missing


_warned: set[frozenset[int]] = set()


def use_fallback_fonts(fig: Figure) -> list[str]:
    """Give every text of ``fig`` fallback fonts for the characters the default font lacks; warn once naming the
    characters no installed font has. Returns the fallback families used."""
    texts = [t for t in fig.findobj(Text) if t.get_text()]
    default = _default_chars()
    lacking = {ord(c) for t in texts for c in t.get_text() if not c.isspace() and ord(c) not in default}
    if not lacking:
        return []
    names, missing = fallback_fonts(lacking)
    if names:
        family = [*list(rcParams["font.family"]), *names]
        for t in texts:
            if any(ord(c) in lacking for c in t.get_text()):
                t.set_fontfamily(family)
    if missing and frozenset(missing) not in _warned:
        _warned.add(frozenset(missing))
        shown = "".join(sorted(chr(c) for c in missing))
        warnings.warn(
            f"no installed font has the glyphs for {shown!r}: they draw as boxes in figures; install a font that "
            "has them (e.g. Noto Sans CJK: apt install fonts-noto-cjk)",
            stacklevel=3,
        )
    return names


@contextlib.contextmanager
def fonts_for_any_script(fig: Figure) -> Iterator[list[str]]:
    """While drawing ``fig``: fallback fonts set, and matplotlib's warning per missing glyph silenced (the one
    warning of ``use_fallback_fonts`` names them all)."""
    names = use_fallback_fonts(fig)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from", category=UserWarning)
        warnings.filterwarnings(
            "ignore", message=r"Matplotlib currently does not support", category=UserWarning
        )
        yield names
