"""Issue 11, item 9: non-Latin class names draw as text in figures (an installed font that has the glyphs), and
when no font has them one warning names them."""

from __future__ import annotations

import warnings

import pytest
from matplotlib import font_manager

from difair.viz import fonts
from difair.viz.style import new_figure, png_bytes

CJK = "猫犬鳥"


def _cjk_font() -> str | None:
    """The family of an installed font with the CJK glyphs, made known to matplotlib if its font cache predates
    it; None when there is none."""
    want = {ord(c) for c in CJK}
    known = {f.fname for f in font_manager.fontManager.ttflist}
    for path in font_manager.findSystemFonts():
        if want <= fonts._charmap(path):
            if path not in known:
                font_manager.fontManager.addfont(path)
            return font_manager.FontProperties(fname=path).get_name()
    return None


def _figure_with_cjk_title():
    fig = new_figure(3, 2)
    ax = fig.add_subplot()
    ax.set_title(f"class {CJK}")
    ax.set_xlabel("plain latin")
    return fig, ax


def test_a_cjk_title_is_drawn_in_a_font_that_has_its_glyphs():
    if _cjk_font() is None:
        pytest.skip("no installed font has CJK glyphs (e.g. apt install fonts-noto-cjk)")
    fig, ax = _figure_with_cjk_title()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither difair's nor matplotlib's missing-glyph warning
        png_bytes(fig)
    paths = font_manager.fontManager._find_fonts_by_props(ax.title.get_fontproperties())
    covered = set().union(*(fonts._charmap(str(p)) for p in paths))
    assert {ord(c) for c in f"class {CJK}" if c != " "} <= covered
    assert ax.xaxis.label.get_fontfamily() == ["sans-serif"]  # Latin text keeps the default font


def test_without_a_font_for_the_glyphs_one_warning_names_them(monkeypatch):
    monkeypatch.setattr(fonts, "_candidates", lambda: [])
    monkeypatch.setattr(fonts, "_warned", set())
    fig, _ = _figure_with_cjk_title()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        png_bytes(fig)
        png_bytes(fig)  # drawn again: no second warning
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1, messages
    assert all(c in messages[0] for c in CJK) and "install a font" in messages[0]


def test_latin_text_looks_for_no_fallback(monkeypatch):
    def fail():
        raise AssertionError("searched the installed fonts for Latin text")

    monkeypatch.setattr(fonts, "_candidates", fail)
    fig = new_figure(2, 2)
    fig.add_subplot().set_title("AUROC 0.93, épreuve")
    assert fonts.use_fallback_fonts(fig) == []


def test_a_placeholder_font_is_never_taken_for_a_font_with_the_glyphs(monkeypatch):
    assert not any(f.name.startswith("Last Resort") for f in fonts._candidates())
    names, _ = fonts.fallback_fonts({ord(c) for c in CJK})
    assert not any(n.startswith("Last Resort") for n in names)
    if _cjk_font() is None:  # here no real font has the glyphs: the warning that names them must come
        monkeypatch.setattr(fonts, "_warned", set())
        fig, _ = _figure_with_cjk_title()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            png_bytes(fig)
        assert any(CJK[0] in str(w.message) for w in caught)
