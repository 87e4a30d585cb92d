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
