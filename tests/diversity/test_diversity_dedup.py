"""Duplicate finders and text hashing, without a store."""

from __future__ import annotations

import re
import unicodedata

import numpy as np
import pytest

from curation.diversity import dedup, minhash
from curation.diversity.text import doc_ngrams, ngram_hashes, normalise_text, tokenise
from curation.export import textmatch

BASE = (
    "Maria bakes forty two cookies for the school fair and sells them in bags of six while her brother "
    "counts the coins they collect at the stall near the gate"
)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Hello   World", "hello world"),
        ("ＨＥＬＬＯ world", "hello world"),  # full-width letters (NFKC)
        ("Straße", "STRASSE"),  # casefold
        ("line one\n\tline two ", "line one line two"),
    ],
)
def test_normalisation_for_exact_duplicates(a: str, b: str) -> None:
    assert normalise_text(a) == normalise_text(b)
    assert dedup.exact_duplicates([a, "something else", b]) == [dedup.Finding(2, 0, "exact", 1.0)]


SAME_OR_NOT = [
    ("Hello   World", "hello world"),
    ("ＨＥＬＬＯ world", "hello world"),
    ("Straße", "STRASSE"),
    ("ﬁne\u00a0print", "fine print"),  # ligature (NFKC) and a no-break space
    ("a\x1cb", "a b"),  # an ASCII separator that str.split and \\s both take for whitespace
    ("tab\there", "tab here "),
    ("café", "cafe"),  # accents stay: different texts
    ("2 + 2", "2+2"),  # spaces between words are kept
]


@pytest.mark.parametrize(("a", "b"), SAME_OR_NOT)
def test_the_export_plan_and_the_dedup_job_agree_on_which_texts_are_the_same(a: str, b: str) -> None:
    """One rule: the export's synthetic-vs-real key matches exactly when dedup marks an exact duplicate."""
    assert textmatch.normalise_text is normalise_text
    same_for_dedup = dedup.exact_duplicates([a, b]) != []
    assert (textmatch.text_key(a, "") == textmatch.text_key(b, "")) is same_for_dedup
    assert same_for_dedup is (normalise_text(a) == normalise_text(b))


def test_the_ascii_fast_path_gives_what_the_unicode_rule_gives() -> None:
    every_ascii = "".join(map(chr, range(128)))
    for text in (every_ascii, f"  {every_ascii[::-1]}\t", "Mixed CASE\r\nlines\x0b\x0c end "):
        slow = re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text).casefold()).strip()
        assert normalise_text(text) == slow


def test_exact_matches_across_sets() -> None:
    found = dedup.exact_matches(["x y", "A  B"], ["a b", "c"])
    assert [(f.index, f.other) for f in found] == [(1, 0)]


def test_ngram_hashes_are_stable_and_cover_short_documents() -> None:
    corpus = tokenise(["one two three", "a b c d e f g", ""])
    hashes, offsets = ngram_hashes(corpus, 5)
    assert list(np.diff(offsets)) == [1, 3, 0]
    again, _ = ngram_hashes(tokenise(["one two three", "a b c d e f g", ""]), 5)
    assert (hashes == again).all()
    skipped, offsets = ngram_hashes(corpus, 5, short_docs="skip")
    assert list(np.diff(offsets)) == [0, 3, 0]
    words, grams = doc_ngrams("a b c d e f g", 5)
    assert words[:2] == ["a", "b"] and (grams == hashes[1:4]).all()


def test_minhash_estimates_jaccard() -> None:
    words = BASE.split()
    texts = [BASE, " ".join(words[:20] + ["entirely", "different", "ending", "words", "here", "now", "ok"])]
    hashes, offsets = minhash.shingle_hashes(texts, 5)
    sig = minhash.minhash_signatures(hashes, offsets, num_perm=256)
    estimate = float((sig[0] == sig[1]).mean())
    exact = dedup.ShingleSets(hashes, offsets).jaccard(0, 1)
    assert abs(estimate - exact) < 0.1


def test_near_duplicates_keep_the_first_and_point_at_it() -> None:
    texts = [
        BASE,
        "A completely unrelated sentence about the weather in the mountains during a long cold winter night",
        BASE.replace("gate", "entrance"),  # one word changed: Jaccard ~0.86
        BASE + " today",
    ]
    found = dedup.near_duplicates(texts)
    assert {(f.index, f.other) for f in found} == {(2, 0), (3, 0)}
    assert all(f.method == "near" and 0.8 <= f.score < 1.0 for f in found)


def test_near_duplicates_respect_the_threshold() -> None:
    words = BASE.split()
    half = " ".join(words[: len(words) // 2] + ["zz"] * 5 + [f"w{i}" for i in range(len(words) // 2)])
    assert dedup.near_duplicates([BASE, half]) == []
    assert dedup.near_duplicates([BASE, half], threshold=0.2)


def test_near_duplicates_skip_marked_samples() -> None:
    texts = [BASE, BASE, BASE + " again"]
    found = dedup.near_duplicates(texts, skip=np.array([False, True, False]))
    assert [(f.index, f.other) for f in found] == [(2, 0)]


def test_chain_of_near_duplicates_points_at_kept_samples_only() -> None:
    words = BASE.split()
    a = words
    b = words[:-3] + ["x1", "x2", "x3"]
    c = b[:-6] + ["y1", "y2", "y3"] + b[-3:]
    texts = [" ".join(t) for t in (a, b, c)]
    found = dedup.near_duplicates(texts, threshold=0.7)
    marked = {f.index for f in found}
    assert found and all(f.other not in marked and f.other < f.index for f in found)


def test_near_matches_across_sets_pick_the_best_target() -> None:
    targets = ["unrelated text about ships and harbours and sailors on the sea", BASE]
    found = dedup.near_matches([BASE + " now", "nothing like it at all really"], targets)
    assert [(f.index, f.other) for f in found] == [(0, 1)]


def test_semantic_duplicates_on_vectors() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 32)).astype(np.float32)
    x[30] = x[3] + 0.01 * rng.standard_normal(32)
    x[40] = x[3] + 0.01 * rng.standard_normal(32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    found = dedup.semantic_duplicates(x, threshold=0.95)
    assert {(f.index, f.other) for f in found} == {(30, 3), (40, 3)}
    cross = dedup.semantic_matches(x[[30, 17]], x[:10], threshold=0.95)
    assert [(f.index, f.other) for f in cross] == [(0, 3)]


EVAL = "Natalia sold clips to forty eight of her friends in April and then she sold half as many clips in May"


def test_contamination_finds_a_planted_13_gram() -> None:
    planted = "Here is a task: " + " ".join(EVAL.split()[2:15]) + " and more words to finish."
    found = dedup.contamination(
        ["clean sample text with nothing shared", planted], ["other eval question", EVAL]
    )
    assert len(found) == 1
    hit = found[0]
    assert (hit.index, hit.other, hit.method) == (1, 1, "contamination")
    assert hit.detail == " ".join(EVAL.split()[2:15]).lower()
    assert 0 < hit.score <= 1


def test_contamination_ignores_a_12_gram() -> None:
    planted = "Here is a task: " + " ".join(EVAL.split()[2:14]) + " then something else entirely."
    assert dedup.contamination([planted], [EVAL]) == []


@pytest.mark.parametrize("threshold", [0.5, 0.8, 0.9])
def test_lsh_parameters_favour_recall(threshold: float) -> None:
    bands, rows = minhash.lsh_params(threshold, 128)
    assert bands * rows <= 128
    assert minhash.candidate_probability(threshold, bands, rows) >= minhash.LSH_RECALL_AT_THRESHOLD
    assert (
        minhash.candidate_probability(threshold, 128 // (rows + 1), rows + 1)
        < minhash.LSH_RECALL_AT_THRESHOLD
    )
