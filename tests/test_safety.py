"""Showing hostile text: bidi controls are written out in the stored order."""

from __future__ import annotations

import pytest

from curation.safety import BIDI_CONTROLS, reveal_bidi


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("RTL \u202egnp.exe\u202c", "RTL ⟨U+202E⟩gnp.exe⟨U+202C⟩"),
        ("a\u2066b\u2067c\u2068d\u2069", "a⟨U+2066⟩b⟨U+2067⟩c⟨U+2068⟩d⟨U+2069⟩"),
        ("\u200fשלום\u200e", "⟨U+200F⟩שלום⟨U+200E⟩"),
        ("plain text, ⟨U+202E⟩ typed out", "plain text, ⟨U+202E⟩ typed out"),
    ],
)
def test_bidi_controls_are_written_out(text: str, shown: str) -> None:
    assert reveal_bidi(text) == shown


def test_every_bidi_control_is_revealed() -> None:
    assert sorted(BIDI_CONTROLS) == sorted(
        "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
    )
    assert not BIDI_CONTROLS.intersection(reveal_bidi("".join(BIDI_CONTROLS)))
