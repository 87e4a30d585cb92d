"""Model output is hostile: helpers to show it without letting it act."""

from __future__ import annotations

import html
import re

_IMAGE = re.compile(r"!\[")
_AUTOLINK_IMAGE = re.compile(r"<img\b", re.IGNORECASE)


def neutralise_markdown(text: str) -> str:
    """Markdown that renders formatting but cannot fetch anything or inject HTML.

    HTML is escaped (so tags show as text) and image syntax is broken so the
    browser never requests a URL chosen by a model."""
    escaped = html.escape(text, quote=False)
    escaped = _AUTOLINK_IMAGE.sub("&lt;img", escaped)
    return _IMAGE.sub(r"!\\[", escaped)


def hover_text(text: str, limit: int = 200) -> str:
    """Plain text for chart hover labels (plotly renders a subset of HTML there)."""
    short = text if len(text) <= limit else text[: limit - 1] + "…"
    return html.escape(short).replace("\n", " ")


#: Bidirectional embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069): they
#: reorder what is shown, so the screen differs from the stored text ("Trojan Source").
BIDI_OVERRIDES = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
#: Every invisible bidi control: the above plus the marks (LRM, RLM, ALM).
BIDI_CONTROLS = BIDI_OVERRIDES | frozenset("\u200e\u200f\u061c")
_BIDI_VISIBLE = {ord(char): f"⟨U+{ord(char):04X}⟩" for char in BIDI_CONTROLS}


def reveal_bidi(text: str) -> str:
    """`text` with every bidi control written out (U+202E as ⟨U+202E⟩), so the reviewer
    sees the characters in their stored order."""
    return text.translate(_BIDI_VISIBLE)
