"""Words, sentences and paragraphs for the instruction checks.

IFEval's reference counts words with NLTK's ``RegexpTokenizer(r"\\w+")`` and
sentences with NLTK's punkt model. We write both here instead: no NLTK, no data
download, and a few hundred microseconds per response at most.

Words
    A word is a run of word characters, where word characters are Python's
    ``\\w`` *plus* the combining vowel signs and viramas of the Indic scripts
    (and a few other combining marks). Python's ``\\w`` alone splits "हिन्दी"
    into three "words" because its vowel signs are not alphanumeric; the
    reference inherits that bug through NLTK's ``\\w+``. Apostrophes inside a
    word keep it whole ("don't" is one word, as in any word processor); hyphens
    still separate words ("well-known" is two), as in the reference.

Sentences
    A rule-based splitter in the spirit of punkt, kept deliberately small:

    * ``!`` and ``?`` (and runs like ``?!``) end a sentence when followed by
      whitespace or the end of the text; CJK ``。！？`` always do.
    * A period ends a sentence when followed by whitespace or the end, unless
      the word before it is a known abbreviation (Mr., Dr., e.g., i.e., vs., ...),
      an initial ("J. K. Rowling"), a dotted acronym ("U.S.") not followed by a
      common sentence starter, or a list number at the start of a line ("1.").
      "No."/"Fig."/"p." are abbreviations only before a number.
    * Periods inside a token never split: decimals ("3.14"), versions, URLs.
    * An ellipsis ("..." or "…") ends a sentence unless the next word starts in
      lower case ("I think... maybe").
    * Closing quotes and brackets after the terminator stay with the sentence.
    * Line breaks are whitespace, as in punkt: a bullet list without final
      punctuation is one sentence. A fragment with no word character (a stray
      "***") is not a sentence; it is glued to the sentence before it.

Paragraphs
    Non-empty blocks separated by a blank line (two newlines, possibly with
    spaces or tabs on the blank line).
"""

from __future__ import annotations

import re

# \w plus combining marks: Latin combining diacritics, Cyrillic, Hebrew points,
# Arabic harakat, the Indic blocks (Devanagari .. Malayalam, minus the dandas
# U+0964/U+0965), Sinhala, Thai, Lao, Tibetan, Myanmar, Khmer, and ZWNJ/ZWJ
# (which sit inside Persian and Indic words).
WORD_CHARS = (
    "\\w"
    "\u0300-\u036f\u0483-\u0489\u0591-\u05c7\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed"
    "\u0900-\u0963\u0966-\u0dff\u0e00-\u0eff\u0f00-\u0fff\u1000-\u109f\u1780-\u17ff"
    "\u200c\u200d"
)
_APOSTROPHES = "'\u2019"
_WORD_RE = re.compile(f"[{WORD_CHARS}]+(?:[{_APOSTROPHES}][{WORD_CHARS}]+)*")
_HAS_WORD_RE = re.compile(f"[{WORD_CHARS}]")
_PARAGRAPH_BREAK_RE = re.compile(r"\n[ \t\r\f\v]*\n")

_CLOSERS = "\"'\u201d\u2019\u00bb)\\]"
_OPENERS = "\"'\u201c\u2018\u00ab([{*_"
# A terminator run, the closing quotes/brackets after it, then whitespace or the end;
# or CJK full stops, which need no following space.
_TERMINATOR_RE = re.compile(
    f"(?P<latin>[.!?\u2026]+)[{_CLOSERS}]*(?=\\s|$)|(?P<cjk>[\u3002\uff01\uff1f]+)[{_CLOSERS}\u300d\u300f]*"
)
_NEXT_WORD_RE = re.compile(r"\s*(\S*)")

# Abbreviations (lower case, without the final period) after which a period never
# ends a sentence: titles and Latin-ish short forms that precede more text.
_ABBREVIATIONS = frozenset(
    {
        "mr", "mrs", "ms", "mx", "dr", "prof", "sr", "st", "mt", "rev", "hon", "gen", "col", "capt",
        "cpt", "lt", "sgt", "cmdr", "gov", "sen", "rep", "pres", "e.g", "i.e", "cf", "vs", "viz",
        "approx", "dept", "est", "ave", "blvd", "rd", "jan", "feb", "mar", "apr", "jun", "jul",
        "aug", "sep", "sept", "oct", "nov", "dec", "ph.d", "al", "resp", "incl",
    }
)  # fmt: skip
# Abbreviations that are only abbreviations before a number ("No. 5", "Fig. 2").
_NUMBER_ABBREVIATIONS = frozenset(
    {"no", "nos", "fig", "figs", "vol", "vols", "p", "pp", "ch", "sec", "eq", "art"}
)
# Abbreviations that often end a sentence: a boundary when the next word is capitalised.
_TERMINAL_ABBREVIATIONS = frozenset({"etc", "inc", "ltd", "co", "corp", "jr", "a.m", "p.m", "llc", "bros"})
# Capitalised words that, after a dotted acronym ("U.S."), signal a new sentence.
_SENTENCE_STARTERS = frozenset(
    {
        "the", "a", "an", "it", "he", "she", "they", "we", "i", "you", "this", "that", "these",
        "those", "there", "but", "however", "in", "on", "at", "our", "their", "his", "her", "its",
        "my", "if", "when", "as", "so", "also", "then", "after", "while", "although",
    }
)  # fmt: skip


def words(text: str) -> list[str]:
    """The words of ``text`` (see the module docstring for what a word is)."""
    return _WORD_RE.findall(text)


def count_words(text: str) -> int:
    return len(_WORD_RE.findall(text))


def has_word(text: str) -> bool:
    return _HAS_WORD_RE.search(text) is not None


def split_paragraphs(text: str) -> list[str]:
    """Non-empty, stripped paragraphs separated by blank lines."""
    return [p.strip() for p in _PARAGRAPH_BREAK_RE.split(text) if p.strip()]


def _token_before(text: str, pos: int) -> tuple[str, bool]:
    """The whitespace-delimited token ending at ``pos`` and whether it starts a line."""
    start = pos
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    back = start - 1
    while back >= 0 and text[back] in " \t":
        back -= 1
    return text[start:pos].lstrip(_OPENERS), back < 0 or text[back] == "\n"


def _is_boundary(text: str, match: re.Match[str]) -> bool:
    if match.group("cjk"):
        return True
    punct = match.group("latin")
    nxt_match = _NEXT_WORD_RE.match(text, match.end())
    nxt = nxt_match.group(1).lstrip(_OPENERS) if nxt_match else ""
    if not nxt:
        return True
    if "!" in punct or "?" in punct:
        return True
    if punct != ".":  # ellipsis
        return not nxt[0].islower()
    token, line_start = _token_before(text, match.start())
    if not token:
        return True
    lower = token.lower()
    if lower in _ABBREVIATIONS:
        return False
    if lower in _NUMBER_ABBREVIATIONS and nxt[0].isdigit():
        return False
    if lower in _TERMINAL_ABBREVIATIONS:
        return nxt[0].isupper()
    if token.isdigit() and line_start:
        return False  # "1. First item"
    if len(token) == 1 and token.isupper():
        return False  # an initial: "J. K. Rowling"
    if "." in token and token.replace(".", "").isalpha():
        # a dotted acronym or abbreviation ("U.S.", "Ph.D.", "a.b.c.")
        return nxt[0].isupper() and nxt.rstrip(".,;:!?").lower() in _SENTENCE_STARTERS
    return True


def split_sentences(text: str) -> list[str]:
    """Split ``text`` into sentences (see the module docstring for the rules)."""
    sentences: list[str] = []
    start = 0
    for match in _TERMINATOR_RE.finditer(text):
        if not _is_boundary(text, match):
            continue
        _append_sentence(sentences, text[start : match.end()])
        start = match.end()
    _append_sentence(sentences, text[start:])
    if sentences and not has_word(sentences[-1]):
        return []  # only possible when the whole text has no word at all
    return sentences


def _append_sentence(sentences: list[str], piece: str) -> None:
    piece = piece.strip()
    if not piece:
        return
    if sentences and (not has_word(piece) or not has_word(sentences[-1])):
        sentences[-1] = f"{sentences[-1]} {piece}"
    else:
        sentences.append(piece)


def count_sentences(text: str) -> int:
    return len(split_sentences(text))
