"""The 25 IFEval instruction checkers, with IFEval's own ids and argument names.

Each checker is built from one entry of an IFEval ``kwargs`` list (``None``
values are ignored, as in the HF copy of IFEval where every entry carries every
argument) and then checks a response: ``check(response) -> (followed, note)``.

Semantics follow google-research ``instruction_following_eval/instructions.py``
except where the reference is wrong; each difference is marked ``DIFFERS:`` in
the checker's docstring and tested in ``tests/ifeval/test_ifeval.py``. Differences that
apply to every checker:

* Missing arguments are an error. The reference silently *randomises* a missing
  or out-of-range argument (a random keyword, a random letter, a random
  threshold), which would make a verdict meaningless; we refuse to judge.
* Arguments of the wrong type or value (a relation other than "less than"/"at
  least", a negative count, an unknown argument name) are an error too. Errors
  are `InstructionError`, naming the instruction id and the argument.
* Strings given by the data (keywords, markers, phrases) are matched literally.
  The reference pastes several of them into regular expressions unescaped, so a
  keyword like "C++" or a marker like "P.S" is misread (or crashes).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from curation.ifeval.langid import LANGUAGE_SCRIPTS, SUPPORTED_LANGUAGES, identify
from curation.ifeval.text import WORD_CHARS, count_sentences, count_words, split_paragraphs, words

RELATIONS: tuple[str, str] = ("less than", "at least")

INSTRUCTION_IDS: tuple[str, ...] = (
    "keywords:existence",
    "keywords:frequency",
    "keywords:forbidden_words",
    "keywords:letter_frequency",
    "language:response_language",
    "length_constraints:number_sentences",
    "length_constraints:number_paragraphs",
    "length_constraints:number_words",
    "length_constraints:nth_paragraph_first_word",
    "detectable_content:number_placeholders",
    "detectable_content:postscript",
    "detectable_format:number_bullet_lists",
    "detectable_format:constrained_response",
    "detectable_format:number_highlighted_sections",
    "detectable_format:multiple_sections",
    "detectable_format:json_format",
    "detectable_format:title",
    "combination:two_responses",
    "combination:repeat_prompt",
    "startend:end_checker",
    "change_case:capital_word_frequency",
    "change_case:english_capital",
    "change_case:english_lowercase",
    "punctuation:no_comma",
    "startend:quotation",
)
"""The 25 instruction ids of IFEval (google-research instructions_registry.INSTRUCTION_DICT)."""

Outcome = tuple[bool, str]


def _show(value: Any) -> str:
    """``repr`` of a bad argument, shortened for a verdict's reason."""
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


class InstructionError(ValueError):
    """An instruction that cannot be checked: unknown id or malformed arguments."""

    def __init__(self, instruction_id: str | None, message: str, argument: str | None = None) -> None:
        self.instruction_id = instruction_id
        self.argument = argument
        super().__init__(f"{instruction_id}: {message}" if instruction_id else message)


class Checker:
    """One instruction with validated arguments.

    Subclasses set ``instruction_id`` and ``arg_names`` (IFEval's argument
    names), read their arguments in ``_configure`` with the ``_int``/``_text``/...
    helpers, and implement ``check``.
    """

    instruction_id: ClassVar[str]
    arg_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, kwargs: Mapping[str, Any] | None = None) -> None:
        if kwargs is None:
            kwargs = {}
        if not isinstance(kwargs, Mapping):
            raise InstructionError(
                self.instruction_id, f"kwargs must be an object, got {type(kwargs).__name__}"
            )
        self.kwargs: dict[str, Any] = {k: v for k, v in kwargs.items() if v is not None}
        for name in self.kwargs:
            if name not in self.arg_names:
                expected = ", ".join(self.arg_names) or "none"
                raise InstructionError(
                    self.instruction_id, f"unexpected argument {name!r} (expected: {expected})", name
                )
        self._configure()

    def _configure(self) -> None:
        """Read and validate ``self.kwargs``; the default takes no arguments."""

    def check(self, response: str) -> Outcome:
        raise NotImplementedError

    # -- argument helpers ---------------------------------------------------------------

    def _error(self, name: str, message: str) -> InstructionError:
        return InstructionError(self.instruction_id, f"argument {name!r} {message}", name)

    def _get(self, name: str) -> Any:
        if name not in self.kwargs:
            raise self._error(name, "is required")
        return self.kwargs[name]

    def _int(self, name: str, minimum: int = 0) -> int:
        value = self._get(name)
        if isinstance(value, bool):
            raise self._error(name, f"must be an integer, got {_show(value)}")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        elif isinstance(value, str) and value.strip().isdecimal():
            value = int(value.strip())
        if not isinstance(value, int):
            raise self._error(name, f"must be an integer, got {_show(value)}")
        if value < minimum:
            raise self._error(name, f"must be at least {minimum}, got {value}")
        return value

    def _relation(self, name: str) -> str:
        value = self._get(name)
        if value not in RELATIONS:
            raise self._error(name, f"must be 'less than' or 'at least', got {_show(value)}")
        return value

    def _text(self, name: str) -> str:
        value = self._get(name)
        if not isinstance(value, str) or not value.strip():
            raise self._error(name, f"must be a non-empty string, got {_show(value)}")
        return value.strip()

    def _text_list(self, name: str) -> tuple[str, ...]:
        value = self._get(name)
        if isinstance(value, str) or not isinstance(value, list | tuple) or not value:
            raise self._error(name, f"must be a non-empty list of strings, got {_show(value)}")
        if not all(isinstance(v, str) and v.strip() for v in value):
            raise self._error(name, f"must contain only non-empty strings, got {_show(value)}")
        return tuple(v.strip() for v in value)


CHECKERS: dict[str, type[Checker]] = {}
"""instruction id -> checker class, for all of `INSTRUCTION_IDS`."""


def _register(cls: type[Checker]) -> type[Checker]:
    CHECKERS[cls.instruction_id] = cls
    return cls


def build_checker(instruction_id: str, kwargs: Mapping[str, Any] | None = None) -> Checker:
    """The checker for ``instruction_id`` with ``kwargs``; raises `InstructionError`."""
    cls = CHECKERS.get(instruction_id) if isinstance(instruction_id, str) else None
    if cls is None:
        raise InstructionError(str(instruction_id), "unknown instruction id")
    return cls(kwargs)


def _count_note(what: str, count: int, relation: str, threshold: int) -> str:
    return f"{count} {what}, expected {relation} {threshold}"


def _counted(what: str, count: int, relation: str, threshold: int) -> Outcome:
    """The outcome of "`count` `what`, expected less than / at least `threshold`"."""
    followed = count < threshold if relation == "less than" else count >= threshold
    return followed, _count_note(what, count, relation, threshold)


class _CountChecker(Checker):
    """ "Less than / at least N" of something: the last two of `arg_names` are N and the
    relation; subclasses say what is counted (`what`) and count it (`count`)."""

    what: str

    def _configure(self) -> None:
        count_arg, relation_arg = self.arg_names[-2:]
        self.threshold = self._int(count_arg)
        self.relation = self._relation(relation_arg)

    def count(self, response: str) -> int:
        raise NotImplementedError

    def check(self, response: str) -> Outcome:
        return _counted(self.what, self.count(response), self.relation, self.threshold)


def _phrase_pattern(phrase: str) -> re.Pattern[str]:
    """Whole-word, case-insensitive, literal match of ``phrase``.

    "Whole word" means not preceded or followed by a word character, so it also
    works for phrases that start or end with punctuation ("C++", "U.S."). Runs
    of whitespace inside the phrase match any whitespace (a line break inside
    "Mona Lisa" still counts). Word characters include Indic vowel signs, so
    "क" is not found inside "की".
    """
    body = r"\s+".join(re.escape(part) for part in phrase.split())
    return re.compile(f"(?<![{WORD_CHARS}]){body}(?![{WORD_CHARS}])", re.IGNORECASE)


# -- keywords ---------------------------------------------------------------------------


@_register
class KeywordExistence(Checker):
    """Every keyword appears.

    DIFFERS: whole-word, literal matching. The reference's ``re.search(keyword)``
    matches substrings ("cat" in "category") and treats the keyword as a regex.
    """

    instruction_id = "keywords:existence"
    arg_names = ("keywords",)

    def _configure(self) -> None:
        self.keywords = self._text_list("keywords")
        self._patterns = [_phrase_pattern(k) for k in self.keywords]

    def check(self, response: str) -> Outcome:
        missing = [k for k, p in zip(self.keywords, self._patterns, strict=True) if not p.search(response)]
        if missing:
            return False, "missing keyword(s): " + ", ".join(repr(k) for k in missing)
        return True, "all keywords present"


@_register
class KeywordFrequency(_CountChecker):
    """A keyword appears less than / at least N times.

    DIFFERS: whole-word, literal counting; the reference's ``re.findall`` counts
    substrings ("war" in "software").
    """

    instruction_id = "keywords:frequency"
    arg_names = ("keyword", "frequency", "relation")

    def _configure(self) -> None:
        self.keyword = self._text("keyword")
        super()._configure()
        self._pattern = _phrase_pattern(self.keyword)
        self.what = f"occurrence(s) of {self.keyword!r}"

    def count(self, response: str) -> int:
        return len(self._pattern.findall(response))


@_register
class ForbiddenWords(Checker):
    """None of the words appears (whole word, case-insensitive, as in the reference).

    DIFFERS (minor): the words are escaped; the reference builds
    ``r"\\b" + word + r"\\b"`` unescaped.
    """

    instruction_id = "keywords:forbidden_words"
    arg_names = ("forbidden_words",)

    def _configure(self) -> None:
        self.words = self._text_list("forbidden_words")
        self._patterns = [_phrase_pattern(w) for w in self.words]

    def check(self, response: str) -> Outcome:
        found = [w for w, p in zip(self.words, self._patterns, strict=True) if p.search(response)]
        if found:
            return False, "forbidden word(s) used: " + ", ".join(repr(w) for w in found)
        return True, "no forbidden word used"


@_register
class LetterFrequency(_CountChecker):
    """A letter appears less than / at least N times, case-insensitively.

    DIFFERS: ``letter`` must be a single alphabetic character. The reference
    replaces a longer or empty value by a *random* letter and happily counts
    any character ("#", "!", " "); its test
    ``test_letter_frequency_checker_accepts_punctuation`` relies on that. Here a
    non-letter is a malformed argument (cannot judge).
    """

    instruction_id = "keywords:letter_frequency"
    arg_names = ("letter", "let_frequency", "let_relation")

    def _configure(self) -> None:
        letter = self._text("letter")
        if len(letter) != 1 or not letter.isalpha():
            raise self._error("letter", f"must be a single letter, got {letter!r}")
        self.letter = letter.lower()
        super()._configure()
        self.what = f"occurrence(s) of letter {self.letter!r}"

    def count(self, response: str) -> int:
        return response.lower().count(self.letter)


# -- language ---------------------------------------------------------------------------


def _language_matches(response: str, code: str) -> tuple[bool, str]:
    """Whether ``response`` is in language ``code``.

    When the identifier cannot name a language we give the benefit of the
    doubt, as the reference does when langdetect raises: no letters at all, or
    a script shared by several languages with none of their function words.
    But a text in the wrong script is never in the language (Latin text is not
    Hindi).
    """
    guess = identify(response)
    if guess.language is not None:
        return guess.language == code, f"detected language {guess.language!r}"
    if guess.script is None:
        return True, "no letters to identify a language by"
    same_script = LANGUAGE_SCRIPTS.get(code) == guess.script
    return same_script, f"language undetermined ({guess.script} script)"


@_register
class ResponseLanguage(Checker):
    """The whole response is in the given language.

    DIFFERS: uses the offline identifier in `curation.ifeval.langid` instead of
    langdetect; the codes are IFEval's (and a few more, see
    ``curation.ifeval.langid.SUPPORTED_LANGUAGES``); others are a malformed argument.
    """

    instruction_id = "language:response_language"
    arg_names = ("language",)

    def _configure(self) -> None:
        code = self._text("language").lower()
        if code not in SUPPORTED_LANGUAGES:
            raise self._error("language", f"is not a supported language code: {code!r}")
        self.language = code

    def check(self, response: str) -> Outcome:
        ok, note = _language_matches(response, self.language)
        return ok, f"{note}, expected {self.language!r}"


# -- length constraints -----------------------------------------------------------------


@_register
class NumberSentences(_CountChecker):
    """Sentence count less than / at least N.

    DIFFERS: sentences come from `curation.ifeval.text.split_sentences`, not
    NLTK punkt; counts can differ on unusual punctuation.
    """

    instruction_id = "length_constraints:number_sentences"
    arg_names = ("num_sentences", "relation")
    what = "sentence(s)"

    def count(self, response: str) -> int:
        return count_sentences(response)


_DIVIDER_LINE_RE = re.compile(r"^[ \t]*\*{3,}[ \t]*$", re.MULTILINE)


@_register
class NumberParagraphs(Checker):
    """Exactly N paragraphs separated by the markdown divider ``***``.

    As in the reference, empty text before the first or after the last divider
    is ignored and an empty paragraph between dividers fails the check.

    DIFFERS: a divider is a line holding only asterisks (three or more), i.e. a
    markdown thematic break. The reference splits on ``\\s?\\*\\*\\*\\s?``
    anywhere, so bold-italic text (``***word***``) counts as two dividers.
    """

    instruction_id = "length_constraints:number_paragraphs"
    arg_names = ("num_paragraphs",)

    def _configure(self) -> None:
        self.num_paragraphs = self._int("num_paragraphs")

    def check(self, response: str) -> Outcome:
        pieces = _DIVIDER_LINE_RE.split(response)
        count = len(pieces)
        for index, piece in enumerate(pieces):
            if not piece.strip():
                if index in (0, len(pieces) - 1):
                    count -= 1
                else:
                    return False, f"empty paragraph between dividers (paragraph {index + 1})"
        return count == self.num_paragraphs, f"{count} paragraph(s), expected {self.num_paragraphs}"


@_register
class NumberWords(_CountChecker):
    """Word count less than / at least N.

    DIFFERS: words from `curation.ifeval.text.words`: a contraction is one word
    and Indic words are not cut at their vowel signs (the reference's NLTK
    ``\\w+`` tokenizer does both).
    """

    instruction_id = "length_constraints:number_words"
    arg_names = ("num_words", "relation")
    what = "word(s)"

    def count(self, response: str) -> int:
        return count_words(response)


_LEADING_NON_WORD_RE = re.compile(f"^[^{WORD_CHARS}]+")


def first_word(paragraph: str) -> str:
    """The first word of ``paragraph``, lower-cased, with leading punctuation,
    quotes and markdown (``"``, ``**``, ``#``, ``(``, ...) skipped; curly
    apostrophes normalised to ``'``."""
    rest = _LEADING_NON_WORD_RE.sub("", paragraph, count=1)
    found = words(rest[:200])
    return found[0].lower().replace("\u2019", "'") if found else ""


@_register
class NthParagraphFirstWord(Checker):
    """Exactly N paragraphs (separated by blank lines) and paragraph i starts with a word.

    DIFFERS:

    * Paragraphs are the *non-empty* blocks between blank lines, and the nth
      of those is checked. The reference counts non-empty blocks but indexes
      the raw ``split("\\n\\n")`` list, so a leading blank block or an extra
      blank line ("\\n\\n\\n\\n") shifts which paragraph it reads.
    * A blank line may contain spaces or tabs.
    * The first word skips any leading punctuation, quotes or markdown and
      ends where the word ends. The reference strips only one ``'`` and one
      ``"`` and stops at the first of ``.,?!'"`` (so ``**Summary**`` or
      ``“Hello`` never match, and "I'm" reads as "i").
    * ``nth_paragraph`` must be between 1 and ``num_paragraphs`` (the reference
      replaces an out-of-range value by a random one).
    """

    instruction_id = "length_constraints:nth_paragraph_first_word"
    arg_names = ("num_paragraphs", "nth_paragraph", "first_word")

    def _configure(self) -> None:
        self.num_paragraphs = self._int("num_paragraphs", minimum=1)
        self.nth_paragraph = self._int("nth_paragraph", minimum=1)
        if self.nth_paragraph > self.num_paragraphs:
            raise self._error(
                "nth_paragraph",
                f"must not exceed num_paragraphs ({self.num_paragraphs}), got {self.nth_paragraph}",
            )
        word = self._text("first_word")
        normalised = first_word(word)
        if not normalised or len(words(word)) != 1:
            raise self._error("first_word", f"must be a single word, got {word!r}")
        self.first_word = normalised

    def check(self, response: str) -> Outcome:
        paragraphs = split_paragraphs(response)
        if len(paragraphs) != self.num_paragraphs:
            return False, f"{len(paragraphs)} paragraph(s), expected {self.num_paragraphs}"
        found = first_word(paragraphs[self.nth_paragraph - 1])
        if found != self.first_word:
            return (
                False,
                f"paragraph {self.nth_paragraph} starts with {found!r}, expected {self.first_word!r}",
            )
        return True, f"paragraph {self.nth_paragraph} starts with {found!r}"


# -- detectable content -----------------------------------------------------------------


def count_placeholders(response: str) -> int:
    r"""How many times the reference's ``re.findall(r"\[.*?\]")`` matches, in
    linear time (the regex is quadratic on a long line of "[")."""
    count = 0
    for line in response.split("\n"):
        pos = 0
        while (start := line.find("[", pos)) >= 0 and (end := line.find("]", start + 1)) >= 0:
            count += 1
            pos = end + 1
    return count


@_register
class NumberPlaceholders(Checker):
    """At least N square-bracket placeholders like ``[address]`` (as the reference).

    Empty brackets and markdown link texts count too, as in the reference.
    """

    instruction_id = "detectable_content:number_placeholders"
    arg_names = ("num_placeholders",)

    def _configure(self) -> None:
        self.num_placeholders = self._int("num_placeholders")

    def check(self, response: str) -> Outcome:
        count = count_placeholders(response)
        return count >= self.num_placeholders, _count_note(
            "placeholder(s)", count, "at least", self.num_placeholders
        )


@_register
class Postscript(Checker):
    """A postscript starting with the marker (anywhere, case-insensitive, as the reference).

    "P.S." and "P.P.S" accept optional spaces ("P. S.", "p.p.s"), as in the
    reference. DIFFERS: other markers are matched literally (the reference
    pastes them into a regex unescaped), and no marker may start inside a
    word, so "PS:" is not found in "GPS:".
    """

    instruction_id = "detectable_content:postscript"
    arg_names = ("postscript_marker",)

    def _configure(self) -> None:
        self.marker = self._text("postscript_marker")
        if self.marker == "P.P.S":
            body = r"p\.\s?p\.\s?s"
        elif self.marker == "P.S.":
            body = r"p\.\s?s\."
        else:
            body = re.escape(self.marker.lower())
        self._pattern = re.compile(rf"(?<!\w){body}")

    def check(self, response: str) -> Outcome:
        if self._pattern.search(response.lower()):
            return True, f"postscript marker {self.marker!r} found"
        return False, f"no postscript starting with {self.marker!r}"


# -- detectable format ------------------------------------------------------------------

# The reference's patterns are ``^\s*\*[^\*].*$`` and ``^\s*-.*$``; its ``\s*`` can run
# across blank lines, which counts the same bullets but is quadratic on a long run of
# newlines, so ours stop at the line end.
_STAR_BULLET_RE = re.compile(r"^[^\S\n]*\*[^\*].*$", re.MULTILINE)
_DASH_BULLET_RE = re.compile(r"^[^\S\n]*-.*$", re.MULTILINE)
_DASH_RULE_RE = re.compile(r"^\s*-{3,}\s*$")


@_register
class NumberBulletLists(Checker):
    """Exactly N markdown bullets (lines starting with ``*`` or ``-``), as the reference.

    DIFFERS: a line of only dashes (``---``, a markdown horizontal rule) is not
    a bullet; the reference counts it.
    """

    instruction_id = "detectable_format:number_bullet_lists"
    arg_names = ("num_bullets",)

    def _configure(self) -> None:
        self.num_bullets = self._int("num_bullets")

    def check(self, response: str) -> Outcome:
        stars = len(_STAR_BULLET_RE.findall(response))
        dashes = sum(1 for line in _DASH_BULLET_RE.findall(response) if not _DASH_RULE_RE.match(line))
        count = stars + dashes
        return count == self.num_bullets, f"{count} bullet point(s), expected exactly {self.num_bullets}"


_CONSTRAINED_OPTIONS = ("My answer is yes.", "My answer is no.", "My answer is maybe.")


@_register
class ConstrainedResponse(Checker):
    """The response contains one of IFEval's fixed answer options (as the reference)."""

    instruction_id = "detectable_format:constrained_response"

    def check(self, response: str) -> Outcome:
        stripped = response.strip()
        for option in _CONSTRAINED_OPTIONS:
            if option in stripped:
                return True, f"contains {option!r}"
        return False, "contains none of: " + ", ".join(repr(o) for o in _CONSTRAINED_OPTIONS)


_HIGHLIGHT_RE = re.compile(r"\*[^\n\*]*\*")
_DOUBLE_HIGHLIGHT_RE = re.compile(r"\*\*[^\n\*]*\*\*")


@_register
class NumberHighlightedSections(Checker):
    """At least N non-empty ``*highlighted*`` or ``**highlighted**`` spans (as the reference)."""

    instruction_id = "detectable_format:number_highlighted_sections"
    arg_names = ("num_highlights",)

    def _configure(self) -> None:
        self.num_highlights = self._int("num_highlights")

    def check(self, response: str) -> Outcome:
        count = sum(1 for h in _HIGHLIGHT_RE.findall(response) if h.strip("*").strip())
        count += sum(1 for h in _DOUBLE_HIGHLIGHT_RE.findall(response) if h[2:-2].strip())
        return (
            count >= self.num_highlights,
            _count_note("highlighted section(s)", count, "at least", self.num_highlights),
        )


@_register
class MultipleSections(Checker):
    """At least N sections, each introduced by "<splitter> <number>" (as the reference).

    The splitter is case-sensitive and may appear anywhere, as in the
    reference. DIFFERS (minor): the splitter is escaped before use in a regex.
    """

    instruction_id = "detectable_format:multiple_sections"
    arg_names = ("section_spliter", "num_sections")

    def _configure(self) -> None:
        self.splitter = self._text("section_spliter")
        self.num_sections = self._int("num_sections")
        self._pattern = re.compile(r"\s?" + re.escape(self.splitter) + r"\s?\d+\s?")

    def check(self, response: str) -> Outcome:
        count = len(self._pattern.split(response)) - 1
        return (
            count >= self.num_sections,
            _count_note(f"{self.splitter!r} section(s)", count, "at least", self.num_sections),
        )


@_register
class JsonFormat(Checker):
    """The whole response is JSON, optionally in a markdown code fence (as the reference)."""

    instruction_id = "detectable_format:json_format"

    def check(self, response: str) -> Outcome:
        value = (
            response.strip()
            .removeprefix("```json")
            .removeprefix("```Json")
            .removeprefix("```JSON")
            .removeprefix("```")
            .removesuffix("```")
            .strip()
        )
        try:
            json.loads(value)
        except (ValueError, RecursionError) as exc:
            return False, f"not valid JSON: {type(exc).__name__}: {exc}"
        return True, "valid JSON"


def find_titles(response: str) -> list[str]:
    r"""What the reference's ``re.findall(r"<<[^\n]+>>")`` finds, in linear time.

    Per line, the greedy pattern matches at most once: from the first "<<" to
    the last ">>" at least one character later. (The regex itself is quadratic
    on a long line of "<".)
    """
    titles = []
    for line in response.split("\n"):
        start = line.find("<<")
        if start >= 0:
            end = line.rfind(">>")
            if end >= start + 3:
                titles.append(line[start : end + 2])
    return titles


@_register
class Title(Checker):
    """A non-empty title in double angular brackets, ``<<title>>`` (as the reference)."""

    instruction_id = "detectable_format:title"

    def check(self, response: str) -> Outcome:
        for title in find_titles(response):
            if title.lstrip("<").rstrip(">").strip():
                return True, f"title {title!r}"
        return False, "no <<title>> found"


# -- combination ------------------------------------------------------------------------


@_register
class TwoResponses(Checker):
    """Two different responses separated by ``******`` (as the reference)."""

    instruction_id = "combination:two_responses"

    def check(self, response: str) -> Outcome:
        parts = response.split("******")
        valid: list[str] = []
        for index, part in enumerate(parts):
            if part.strip():
                valid.append(part.strip())
            elif index not in (0, len(parts) - 1):
                return False, "empty response between separators"
        if len(valid) != 2:
            return False, f"{len(valid)} response(s), expected 2"
        if valid[0] == valid[1]:
            return False, "the two responses are identical"
        return True, "two different responses"


@_register
class RepeatPrompt(Checker):
    """The response starts with ``prompt_to_repeat`` (case-insensitive, as the reference).

    The text to repeat comes from the kwargs, as in IFEval's data, not from the
    sample's prompt (which also holds the instruction to repeat it).
    """

    instruction_id = "combination:repeat_prompt"
    arg_names = ("prompt_to_repeat",)

    def _configure(self) -> None:
        self.prompt_to_repeat = self._text("prompt_to_repeat").lower()

    def check(self, response: str) -> Outcome:
        if response.strip().lower().startswith(self.prompt_to_repeat):
            return True, "starts with the prompt"
        return False, "does not start with the prompt to repeat"


# -- start / end ------------------------------------------------------------------------


@_register
class EndChecker(Checker):
    """The response ends with the phrase, ignoring case, outer whitespace and quotes (as the reference)."""

    instruction_id = "startend:end_checker"
    arg_names = ("end_phrase",)

    def _configure(self) -> None:
        self.end_phrase = self._text("end_phrase").lower()

    def check(self, response: str) -> Outcome:
        if response.strip().strip('"').lower().endswith(self.end_phrase):
            return True, "ends with the phrase"
        return False, f"does not end with {self.end_phrase!r}"


_QUOTE_PAIRS = (('"', '"'), ("\u201c", "\u201d"))


@_register
class Quotation(Checker):
    """The response is wrapped in double quotation marks.

    DIFFERS: typographic quotes (“...”) count as double quotation marks too;
    the reference accepts only ASCII ``"``.
    """

    instruction_id = "startend:quotation"

    def check(self, response: str) -> Outcome:
        value = response.strip()
        ok = len(value) > 1 and any(value[0] == a and value[-1] == b for a, b in _QUOTE_PAIRS)
        return ok, "wrapped in double quotes" if ok else "not wrapped in double quotes"


# -- change case ------------------------------------------------------------------------

_CAPS_TOKEN_RE = re.compile(f"[{WORD_CHARS}]+(?:[-'\u2019.][{WORD_CHARS}]+)*")


@_register
class CapitalWordFrequency(_CountChecker):
    """Words in all capital letters appear less than / at least N times.

    A word is all-capital when ``str.isupper()`` holds, as in the reference, so
    "I", "A" and "COVID-19" count. DIFFERS: tokens come from our own tokenizer
    (hyphenated and dotted words like "STATE-OF-THE-ART" and "U.S." stay whole,
    as with NLTK; contractions stay whole, unlike NLTK's "DO" + "N'T").
    """

    instruction_id = "change_case:capital_word_frequency"
    arg_names = ("capital_frequency", "capital_relation")
    what = "all-capital word(s)"

    def count(self, response: str) -> int:
        return sum(1 for w in _CAPS_TOKEN_RE.findall(response) if w.isupper())


def _english_case(response: str, case_ok: Callable[[str], bool], case_name: str) -> Outcome:
    if not case_ok(response):
        return False, f"not all {case_name}"
    ok, note = _language_matches(response, "en")
    return ok, f"all {case_name}; {note}"


@_register
class EnglishCapital(Checker):
    """English and all capital letters (``str.isupper``).

    DIFFERS: when the language cannot be identified the case rule still
    applies; the reference returns True outright when langdetect raises.
    """

    instruction_id = "change_case:english_capital"

    def check(self, response: str) -> Outcome:
        return _english_case(response, str.isupper, "capital letters")


@_register
class EnglishLowercase(Checker):
    """English and all lowercase letters (``str.islower``); differs as `EnglishCapital`."""

    instruction_id = "change_case:english_lowercase"

    def check(self, response: str) -> Outcome:
        return _english_case(response, str.islower, "lowercase letters")


# -- punctuation ------------------------------------------------------------------------

_COMMAS = (",", "\uff0c", "\u060c", "\u3001")


@_register
class NoComma(Checker):
    """No commas.

    DIFFERS: the full-width (，), Arabic (،) and ideographic (、) commas count
    as commas too; the reference looks only for ASCII ",".
    """

    instruction_id = "punctuation:no_comma"

    def check(self, response: str) -> Outcome:
        found = [c for c in _COMMAS if c in response]
        if found:
            return False, "contains comma(s): " + " ".join(found)
        return True, "no commas"
