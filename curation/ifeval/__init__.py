"""Instruction-following checks in the format of Google's IFEval.

Data in IFEval's format works unchanged: an ``instruction_id_list`` and a
parallel ``kwargs`` list using IFEval's argument names. ``evaluate_response``
gives strict and loose outcomes per instruction, as IFEval's evaluation_lib.
Where IFEval's reference checkers are buggy we deliberately differ; each
difference is marked ``DIFFERS:`` in `curation.ifeval.checkers`.

No NLTK and no langdetect: words, sentences and paragraphs come from
`curation.ifeval.text`, languages from `curation.ifeval.langid`.
"""

from curation.ifeval.checkers import (
    CHECKERS,
    INSTRUCTION_IDS,
    RELATIONS,
    Checker,
    InstructionError,
    build_checker,
)
from curation.ifeval.evaluate import (
    Evaluation,
    InstructionOutcome,
    build_checkers,
    evaluate_checkers,
    evaluate_response,
    loose_variants,
)
from curation.ifeval.langid import detect_language, identify
from curation.ifeval.text import count_sentences, count_words, split_paragraphs, split_sentences, words

__all__ = [
    "CHECKERS",
    "INSTRUCTION_IDS",
    "RELATIONS",
    "Checker",
    "Evaluation",
    "InstructionError",
    "InstructionOutcome",
    "build_checker",
    "build_checkers",
    "count_sentences",
    "count_words",
    "detect_language",
    "evaluate_checkers",
    "evaluate_response",
    "identify",
    "loose_variants",
    "split_paragraphs",
    "split_sentences",
    "words",
]
