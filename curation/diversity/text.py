"""Text normalisation, word tokens and stable, vectorised word n-gram hashes.

Hashes are stable across processes and machines (blake2b of each distinct word,
combined with fixed odd multipliers), so MinHash signatures and contamination
n-grams computed in different jobs agree. A corpus is handled as one flat array
of token hashes plus offsets, so hashing 100k documents is a few numpy passes.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_WORD = re.compile(r"\w+")
_SPACE = re.compile(r"\s+")
#: Position multipliers of the n-gram hash (random odd 64-bit constants, fixed forever).
_MULTIPLIERS = np.random.default_rng(20240611).integers(1, 2**63 - 1, size=64, dtype=np.uint64) | np.uint64(1)


def normalise_text(text: str) -> str:
    """The form in which two texts count as the same: NFKC, casefolded, whitespace collapsed.

    One rule for every exact match: the dedup job's exact duplicates and copies of real
    data, and the export plan's synthetic-vs-real keys (`export.textmatch.text_key`), so
    the export agrees with the marks. ASCII text takes a fast path with the same result:
    NFKC leaves it unchanged, casefold is lower(), and split/join collapses the same
    whitespace as `\\s+` (str.isspace and the regex agree on every code point)."""
    if text.isascii():
        return " ".join(text.lower().split())
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def normalised_words(text: str) -> list[str]:
    """Word tokens (`\\w+`) of the NFKC, casefolded text, punctuation dropped: what n-gram
    hashes, MinHash and contamination compare. Not IFEval's `ifeval.text.words`, which keeps
    the original case and apostrophes because its checks count words as a reader would."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())


def _word_hash(word: str) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest(), "little")


@dataclass
class TokenisedCorpus:
    """Token ids of many documents as one flat array (document d is ids[offsets[d]:offsets[d+1]])."""

    ids: np.ndarray
    offsets: np.ndarray
    vocab: dict[str, int]
    word_hashes: np.ndarray

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def doc_words(self, d: int) -> list[str]:
        inverse = {i: w for w, i in self.vocab.items()}
        return [inverse[int(i)] for i in self.ids[self.offsets[d] : self.offsets[d + 1]]]


def tokenise(texts: Sequence[str]) -> TokenisedCorpus:
    """Tokenise every text and give each distinct word a stable 64-bit hash."""
    vocab: dict[str, int] = {}
    setdefault = vocab.setdefault
    flat: list[int] = []
    lengths = np.empty(len(texts), dtype=np.int64)
    for d, text in enumerate(texts):
        tokens = normalised_words(text)
        lengths[d] = len(tokens)
        flat.extend(setdefault(w, len(vocab)) for w in tokens)
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    word_hashes = np.fromiter((_word_hash(w) for w in vocab), dtype=np.uint64, count=len(vocab))
    return TokenisedCorpus(np.asarray(flat, dtype=np.int64), offsets, vocab, word_hashes)


def _combine(token_hashes: np.ndarray) -> int:
    """Hash of one short token sequence (same formula as the vectorised n-grams)."""
    with np.errstate(over="ignore"):
        return int((token_hashes * _MULTIPLIERS[: len(token_hashes)]).sum(dtype=np.uint64))


def ngram_hashes(
    corpus: TokenisedCorpus, n: int, *, short_docs: str = "whole"
) -> tuple[np.ndarray, np.ndarray]:
    """64-bit hashes of every word n-gram of every document, as (hashes, offsets).

    short_docs: what a document with fewer than n (but at least one) words gives —
    "whole": one hash of all its words (so short texts still have a signature), or
    "skip": nothing (the usual convention for distinct-n)."""
    tokens = corpus.word_hashes[corpus.ids] if len(corpus.ids) else np.zeros(0, dtype=np.uint64)
    return token_ngram_hashes(tokens, corpus.offsets, n, short_docs=short_docs)


def token_ngram_hashes(
    tokens: np.ndarray, token_offsets: np.ndarray, n: int, *, short_docs: str = "whole"
) -> tuple[np.ndarray, np.ndarray]:
    """`ngram_hashes` from flat 64-bit token hashes (document d: tokens[token_offsets[d]:token_offsets[d+1]])."""
    if not 1 <= n <= len(_MULTIPLIERS):
        raise ValueError(f"n must be between 1 and {len(_MULTIPLIERS)}")
    lengths = np.diff(token_offsets)
    total = len(tokens)
    windows = max(total - n + 1, 0)
    grams = np.zeros(windows, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(n):
            grams += tokens[j : j + windows] * _MULTIPLIERS[j]
    if windows:
        doc_of = np.repeat(np.arange(len(lengths)), lengths)[:windows]
        valid = np.arange(windows) + n <= token_offsets[1:][doc_of]
        grams = grams[valid]
    counts = np.maximum(lengths - n + 1, 0)
    short = (
        np.flatnonzero((lengths > 0) & (lengths < n))
        if short_docs == "whole"
        else np.zeros(0, dtype=np.int64)
    )
    if len(short):
        counts = counts.copy()
        counts[short] = 1
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    if not len(short):
        return grams, offsets
    out = np.empty(offsets[-1], dtype=np.uint64)
    is_short = np.zeros(offsets[-1], dtype=bool)
    is_short[offsets[short]] = True
    out[~is_short] = grams
    out[is_short] = [_combine(tokens[token_offsets[d] : token_offsets[d + 1]]) for d in short]
    return out, offsets


def doc_ngrams(text: str, n: int) -> tuple[list[str], np.ndarray]:
    """Words of one text and the hashes of its n-grams (position i = words[i:i+n])."""
    corpus = tokenise([text])
    hashes, _ = ngram_hashes(corpus, n, short_docs="skip")
    return corpus.doc_words(0), hashes
