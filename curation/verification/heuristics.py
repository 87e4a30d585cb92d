"""``quality``: cheap checks that catch broken generations in any family.

Checks (each reported in ``details["checks"]``; the sample fails if any fails):

* ``empty``: the response is blank (the content checks are then skipped).
* ``refusal``: a refusal in the opening (``refusal_head_chars``) such as "I can't
  help with that" or "I'm sorry, but I cannot…", or "As an AI language model"
  anywhere.
* ``truncated``: ``metadata["finish_reason"] == "length"``,
  ``metadata["stop_reason"] == "max_tokens"`` or ``metadata["truncated"] is True``.
* ``repetition``: degenerate loops, by three measures (thresholds per family in
  `RepetitionLimits`; the defaults were set on stdlib docstrings, library source
  files and synthetic loops, leaving a margin on both sides):
  the share of word 4-grams that repeat an earlier one (natural prose <= 0.17,
  source code <= 0.44, loops >= 0.9; fail above 0.5, code 0.75); the zlib
  compression ratio of the whole response of >= 500 characters (prose >= 0.34,
  code >= 0.14, loops <= 0.06; fail below 0.15, code 0.08); and the same ratio on
  the last 600 characters of a response of >= 1,200, which catches a loop that
  starts halfway (prose >= 0.36, code >= 0.15; fail below 0.12, code 0.08); and
  a sentence of >= 4 words said three or more times in a row (``sentence_run``; not
  for code, where repeated lines are normal), which the ratios miss when a short
  loop sits at the end of an otherwise varied answer.
* ``length``: characters of the stripped response outside the family's
  ``length_bounds`` (defaults in `DEFAULT_LENGTH_BOUNDS`).
* ``placeholder``: unfilled template slots, in the response and in the prompt:
  ``{{var}}``, ``{topic}`` (a lower-case identifier in single braces, not
  preceded by a letter, backslash, ``^``, ``_`` or ``$``, so LaTeX ``\\frac{ab}``
  and ``x_{max}`` do not count), ``<PLACEHOLDER>`` (capitals, not an HTML tag),
  ``[INSERT ...]`` / ``[PLACEHOLDER]`` / ``[TODO ...]``. Text in backticks and
  fenced code is ignored; for the ``code`` family only the bracketed form is
  checked. A slot the prompt itself quotes is not held against the response.
* ``leaked_prompt``: the response repeats the prompt (or ``metadata["system_prompt"]``
  / ``metadata["system"]``): at least ``leak_threshold`` of its word 8-gram
  shingles appear in the response; only for prompts of >= ``leak_min_prompt_words``
  words (system prompts: >= ``leak_min_system_words``), and not for the families in
  ``leak_skip_families`` (``code``, where repeating the given code is normal).
  Rewriting tasks in other families legitimately repeat their input: add their
  family to ``leak_skip_families`` if they are common in a batch. The details give
  the share of shingles found per source, or, marked ``<source>_is_upper_bound``, an
  upper bound on it (shingles whose words all occur in the response) when even that bound
  is below the threshold and the exact count is skipped.

* ``structured``: only for a structured-output sample (its template had a JSON schema):
  fails when the answer did not validate (``metadata["validation_error"]``).

* ``bidi``: bidirectional embedding, override or isolate controls (U+202A–U+202E,
  U+2066–U+2069) in the prompt or the response: they make the screen differ from the
  stored text ("RTL \u202egnp.exe" shows as "RTL exe.png"). The details give the code
  points found.

``score`` is the share of checks that passed. Pure Python, regular expressions
and zlib: about 5,000 samples (1.6 KB responses) per second of CPU time even with
the machine four times oversubscribed, several times that on an idle core.
"""

from __future__ import annotations

import re
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from curation.data import FAMILIES, SampleRecord
from curation.safety import BIDI_OVERRIDES
from curation.verification.base import VERIFIERS, Execution, Verdict, Verifier

__all__ = ["DEFAULT_LENGTH_BOUNDS", "QualityConfig", "QualityVerifier", "RepetitionLimits", "check_quality"]

#: (min, max) characters of the stripped response, per family.
DEFAULT_LENGTH_BOUNDS: dict[str, tuple[int, int]] = {
    "math": (20, 16_000),
    "code": (20, 32_000),
    "instruction": (2, 16_000),
    "open": (2, 16_000),
}


@dataclass(frozen=True)
class RepetitionLimits:
    max_ngram_repeat: float = 0.5
    min_compression: float = 0.15
    min_tail_compression: float = 0.12
    #: Longest allowed run of one sentence repeated back to back (0 = no limit).
    max_sentence_run: int = 2


@dataclass(frozen=True)
class QualityConfig:
    length_bounds: Mapping[str, tuple[int, int]] = field(default_factory=lambda: dict(DEFAULT_LENGTH_BOUNDS))
    default_length_bounds: tuple[int, int] = (1, 32_000)
    repetition: Mapping[str, RepetitionLimits] = field(
        default_factory=lambda: {"code": RepetitionLimits(0.75, 0.08, 0.08, max_sentence_run=0)}
    )
    default_repetition: RepetitionLimits = RepetitionLimits()
    ngram: int = 4
    min_words_for_ngram: int = 50
    min_chars_for_compression: int = 500
    tail_chars: int = 600
    refusal_head_chars: int = 300
    leak_shingle: int = 8
    leak_threshold: float = 0.6
    leak_min_prompt_words: int = 40
    leak_min_system_words: int = 20
    leak_skip_families: tuple[str, ...] = ("code",)

    def bounds(self, family: str) -> tuple[int, int]:
        return self.length_bounds.get(family, self.default_length_bounds)

    def limits(self, family: str) -> RepetitionLimits:
        return self.repetition.get(family, self.default_repetition)


_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})
_CANT = (
    r"(?:can(?:no|')t|cannot|can not|won't|will not|am unable to|'m unable to|am not able to|'m not able to)"
)
# "I can't help/assist/comply" is a refusal whatever follows; other verbs only with a
# refusal-like object, so that "I cannot write this as a fraction" is not one.
_REFUSAL_HEAD = re.compile(
    r"\bI\s+" + _CANT + r"\s+(?:help|assist|comply|fulfil+)\b"
    r"|\bI\s+"
    + _CANT
    + r"\s+(?:provide|create|generate|write|share|give|complete|answer|do|support|engage in|"
    r"participate in)\s+(?:that|it|such|any|those|these|your|the requested|this (?:request|question|content|task))\b"
    r"|\b(?:I'm|I am)\s+(?:sorry|afraid)\b[^.!?\n]{0,60}?\b(?:can(?:no|')t|cannot|unable|not able|won't)\b"
    r"|^\W*(?:sorry|I apologi[sz]e)\b[^.!?\n]{0,60}?\b(?:can(?:no|')t|cannot|unable|not able|won't)\b",
    re.IGNORECASE,
)
_REFUSAL_ANYWHERE = re.compile(
    r"\bas an ai(?: language)? model\b|\bI(?:'m| am) an ai language model\b", re.IGNORECASE
)

_CODE_SPAN = re.compile(r"```.*?(?:```|\Z)|~~~.*?(?:~~~|\Z)|`[^`\n]+`", re.DOTALL)
_DOUBLE_BRACE = re.compile(r"\{\{\s*[A-Za-z_][\w.]+\s*\}\}")
_SINGLE_BRACE = re.compile(r"(?<![\w\\^_}{$])\{[a-z][a-z0-9_]{2,}\}(?!\})")
_ANGLE = re.compile(r"<([A-Z][A-Z0-9]*(?:[ _-][A-Z0-9]+)*)>")
_HTML_TAGS = frozenset(
    "HTML HEAD BODY TITLE META LINK SCRIPT STYLE DIV SPAN TABLE THEAD TBODY TFOOT TR TD TH UL OL LI DL DT DD "
    "FORM INPUT BUTTON SELECT OPTION TEXTAREA LABEL IMG BR HR PRE CODE EM STRONG SMALL SUB SUP NAV HEADER "
    "FOOTER MAIN SECTION ARTICLE ASIDE CENTER FONT IFRAME CANVAS SVG PATH VIDEO AUDIO SOURCE".split()
)
_BRACKET = re.compile(
    r"\[\s*(?:insert|placeholder|todo|tbd|fill in|to be filled)\b[^\]\n]{0,80}\](?!\()", re.IGNORECASE
)
_WORD = re.compile(r"\w+")


_REFUSAL_HINTS = ("can't", "cannot", "can not", "won't", "will not", "unable", "not able", "sorry", "apolog")


def _check_refusal(text: str, config: QualityConfig) -> dict[str, Any]:
    # Substring pre-filters keep the regular expressions off the common, clean case.
    if "\u2019" in text or "\u2018" in text or "\u02bc" in text:
        text = text.translate(_APOSTROPHES)
    head = text[: config.refusal_head_chars]
    head_lower = head.lower()
    match = None
    if any(hint in head_lower for hint in _REFUSAL_HINTS):
        match = _REFUSAL_HEAD.search(head)
    if match is None:
        lower = text.lower()
        if "ai language model" in lower or "as an ai model" in lower:
            match = _REFUSAL_ANYWHERE.search(text)
    return {"passed": match is None, **({"match": match.group(0)} if match else {})}


def _check_truncated(metadata: Mapping[str, Any]) -> dict[str, Any]:
    why = None
    if metadata.get("finish_reason") == "length":
        why = "finish_reason=length"
    elif metadata.get("stop_reason") == "max_tokens":
        why = "stop_reason=max_tokens"
    elif metadata.get("truncated") is True:
        why = "truncated=true"
    return {"passed": why is None, **({"why": why} if why else {})}


def _check_structured(metadata: Mapping[str, Any]) -> dict[str, Any] | None:
    """Only for structured-output samples (the check did not exist for any other, so the
    verdicts of earlier samples are unchanged and the version stays)."""
    error = metadata.get("validation_error")
    if error:
        return {"passed": False, "why": str(error)[:300]}
    if "fields" in metadata:
        return {"passed": True}
    return None


def _compression(text: str) -> float:
    """Compressed/original size: raw deflate, level 6, 4 KiB window. The small window
    makes it four times cheaper than ``zlib.compress`` (whose cost is mostly setting up
    a 32 KiB window) and loses nothing for loops, which repeat at short range."""
    data = text.encode("utf-8", "replace")
    packer = zlib.compressobj(6, zlib.DEFLATED, -12, 4)
    return len(packer.compress(data) + packer.flush()) / len(data)


def _check_repetition(text: str, words: list[str], family: str, config: QualityConfig) -> dict[str, Any]:
    limits = config.limits(family)
    out: dict[str, Any] = {}
    failed = []
    n = config.ngram
    if len(words) >= config.min_words_for_ngram:
        total = len(words) - n + 1
        ratio = 1 - len(set(zip(*(words[i:] for i in range(n)), strict=False))) / total
        out["ngram_repeat"] = round(ratio, 3)
        if ratio > limits.max_ngram_repeat:
            failed.append("ngram_repeat")
    if len(text) >= config.min_chars_for_compression:
        ratio = _compression(text)
        out["compression"] = round(ratio, 3)
        if ratio < limits.min_compression:
            failed.append("compression")
        if len(text) >= 2 * config.tail_chars:
            tail = _compression(text[-config.tail_chars :])
            out["tail_compression"] = round(tail, 3)
            if tail < limits.min_tail_compression:
                failed.append("tail_compression")
    if limits.max_sentence_run:
        run = _longest_sentence_run(text)
        out["sentence_run"] = run
        if run > limits.max_sentence_run:
            failed.append("sentence_run")
    out["passed"] = not failed
    if failed:
        out["failed"] = failed
    return out


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def _longest_sentence_run(text: str, min_words: int = 4) -> int:
    """Most times one sentence (of >= `min_words` words) appears back to back."""
    longest = current = 0
    previous = None
    for piece in _SENTENCE_END.split(text):
        sentence = " ".join(piece.split()).casefold()
        if len(sentence.split()) < min_words:
            previous, current = None, 0
            continue
        current = current + 1 if sentence == previous else 1
        previous = sentence
        longest = max(longest, current)
    return longest


def _check_length(text: str, family: str, config: QualityConfig) -> dict[str, Any]:
    low, high = config.bounds(family)
    n = len(text)
    return {"passed": low <= n <= high, "chars": n, "bounds": [low, high]}


def _placeholders(text: str, family: str) -> list[str]:
    if "{" not in text and "<" not in text and "[" not in text:
        return []
    if "`" in text or "~~~" in text:
        text = _CODE_SPAN.sub(" ", text)
    found = [m.group(0) for m in _BRACKET.finditer(text)]
    if family != "code":
        found += [m.group(0) for m in _DOUBLE_BRACE.finditer(text)]
        found += [m.group(0) for m in _SINGLE_BRACE.finditer(text)]
        found += [
            m.group(0) for m in _ANGLE.finditer(text) if m.group(1) not in _HTML_TAGS and len(m.group(1)) >= 3
        ]
    return found


def _check_placeholders(prompt: str, response: str, family: str) -> dict[str, Any]:
    in_prompt = _placeholders(prompt, family)
    in_response = [p for p in _placeholders(response, family) if p not in prompt]
    out: dict[str, Any] = {"passed": not in_prompt and not in_response}
    if in_response:
        out["response"] = sorted(set(in_response))[:10]
    if in_prompt:
        out["prompt"] = sorted(set(in_prompt))[:10]
    return out


def _shingles(words: list[str], k: int) -> set[tuple[str, ...]]:
    return set(zip(*(words[i:] for i in range(k)), strict=False))


def _check_leak(sample: SampleRecord, response: str, config: QualityConfig) -> dict[str, Any]:
    sources = []
    if sample.family not in config.leak_skip_families:
        sources.append(("prompt", sample.prompt or "", config.leak_min_prompt_words))
    for key in ("system_prompt", "system"):
        value = (sample.metadata or {}).get(key)
        if isinstance(value, str) and value.strip():
            sources.append((key, value, config.leak_min_system_words))
    k = config.leak_shingle
    response_words: list[str] | None = None
    response_vocabulary: set[str] = set()
    response_shingles: set[tuple[str, ...]] | None = None
    out: dict[str, Any] = {"passed": True}
    for name, text, min_words in sources:
        source_words = _WORD.findall(text.lower())
        if len(source_words) < max(min_words, k):
            continue
        if response_words is None:
            response_words = _WORD.findall(response.lower())
            response_vocabulary = set(response_words)
        source_shingles = _shingles(source_words, k)
        # Upper bound first: a shingle can only occur if each of its k words occurs.
        possible: set[tuple[str, ...]] = set()
        run = 0
        for i, word in enumerate(source_words):
            run = run + 1 if word in response_vocabulary else 0
            if run >= k:
                possible.add(tuple(source_words[i - k + 1 : i + 1]))
        if len(possible) / len(source_shingles) < config.leak_threshold:
            out[name] = round(len(possible) / len(source_shingles), 3)
            out[f"{name}_is_upper_bound"] = True
            continue
        if response_shingles is None:
            response_shingles = _shingles(response_words, k)
        fraction = len(possible & response_shingles) / len(source_shingles)
        out[name] = round(fraction, 3)
        if fraction >= config.leak_threshold:
            out["passed"] = False
    return out


def _check_bidi(prompt: str, response: str) -> dict[str, Any]:
    found = sorted({f"U+{ord(char):04X}" for char in BIDI_OVERRIDES.intersection(prompt + response)})
    return {"passed": not found, **({"found": found} if found else {})}


def check_quality(sample: SampleRecord, config: QualityConfig | None = None) -> Verdict:
    """Run every check on one sample (a pure function of the sample and config)."""
    config = config or QualityConfig()
    response = (sample.response or "").strip()
    family = sample.family
    checks: dict[str, dict[str, Any]] = {}
    checks["empty"] = {"passed": bool(response)}
    checks["truncated"] = _check_truncated(sample.metadata or {})
    if response:
        words = response.split()
        checks["refusal"] = _check_refusal(response, config)
        checks["repetition"] = _check_repetition(response, words, family, config)
        checks["length"] = _check_length(response, family, config)
        checks["placeholder"] = _check_placeholders(sample.prompt or "", response, family)
        checks["leaked_prompt"] = _check_leak(sample, response, config)
    else:
        for name in ("refusal", "repetition", "length", "placeholder", "leaked_prompt"):
            checks[name] = {"passed": None, "skipped": "empty response"}
    checks["bidi"] = _check_bidi(sample.prompt or "", sample.response or "")
    structured = _check_structured(sample.metadata or {})
    if structured is not None:
        checks["structured"] = structured
    failed = [name for name, result in checks.items() if result["passed"] is False]
    ran = [name for name, result in checks.items() if result["passed"] is not None]
    score = (len(ran) - len(failed)) / len(ran)
    reason = "ok" if not failed else "failed: " + ", ".join(failed)
    return Verdict(not failed, round(score, 3), reason, {"checks": checks, "failed": failed})


@VERIFIERS.register("quality")
class QualityVerifier(Verifier):
    name: ClassVar[str] = "quality"
    version: ClassVar[str] = "2"
    families: ClassVar[tuple[str, ...]] = FAMILIES
    execution: ClassVar[Execution] = Execution.PROCESS_POOL

    def __init__(self, config: QualityConfig | None = None) -> None:
        self.config = config or QualityConfig()

    def verify(self, sample: SampleRecord) -> Verdict:
        start = time.perf_counter()
        verdict = check_quality(sample, self.config)
        verdict.duration_ms = round((time.perf_counter() - start) * 1000, 3)
        return verdict
