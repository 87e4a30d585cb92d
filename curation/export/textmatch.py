"""Text matching for the export plan: exact normalised-text keys (synthetic vs real)
and word 13-gram decontamination against evaluation sets.

Both use the diversity package's definitions (`curation.diversity.text.normalise_text`
and `curation.diversity.dedup.contamination`), so the export agrees with the marks the
dedup job writes. A small equivalent 13-gram index here (same normalisation: NFKC,
casefold, word tokens) is kept as a cross-check: `NgramIndex.use_fallback`."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any

from curation.diversity.dedup import contamination
from curation.diversity.text import normalise_text

CONTAMINATION_NGRAM = 13
_WORD = re.compile(r"\w+")


def text_key(prompt: str, response: str) -> int:
    """64-bit key of a sample's normalised prompt and response: equal keys = the same text.

    Python's string hash: stable within one process, which is all a plan needs (keys
    are compared within one plan, never stored)."""
    return hash((normalise_text(prompt), normalise_text(response)))


class NgramIndex:
    """Word n-grams of the evaluation texts; `matches(texts)` gives, for each text
    sharing at least one n-gram, (position, first shared n-gram, evaluation text index)."""

    def __init__(self, eval_texts: Sequence[str], n: int = CONTAMINATION_NGRAM) -> None:
        self.eval_texts = list(eval_texts)
        self.n = n
        self._grams: dict[tuple[str, ...], int] | None = None
        self._contamination: Callable[..., Any] | None = contamination

    def use_fallback(self) -> NgramIndex:
        """Use the local index even when the diversity package is present (tests compare both)."""
        self._contamination = None
        return self

    def _index(self) -> dict[tuple[str, ...], int]:
        if self._grams is None:
            self._grams = {}
            for d, text in enumerate(self.eval_texts):
                tokens = _WORD.findall(unicodedata.normalize("NFKC", text).casefold())
                for i in range(len(tokens) - self.n + 1):
                    self._grams.setdefault(tuple(tokens[i : i + self.n]), d)
        return self._grams

    def matches(self, texts: Sequence[str]) -> list[tuple[int, str, int]]:
        if not self.eval_texts or not texts:
            return []
        if self._contamination is not None:
            return [
                (f.index, f.detail, f.other) for f in self._contamination(texts, self.eval_texts, n=self.n)
            ]
        grams = self._index()
        out = []
        for position, text in enumerate(texts):
            tokens = _WORD.findall(unicodedata.normalize("NFKC", text).casefold())
            for i in range(len(tokens) - self.n + 1):
                gram = tuple(tokens[i : i + self.n])
                if gram in grams:
                    out.append((position, " ".join(gram), grams[gram]))
                    break
        return out
