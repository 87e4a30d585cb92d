"""Acceptance sampling and agreement: the pure statistics against known values."""

from __future__ import annotations

import math

import pytest

from curation.review.agreement import agreement_from_labels, cohen_kappa, fleiss_kappa
from curation.review.sampling import (
    bound_holds,
    clopper_pearson_interval,
    clopper_pearson_upper,
    required_sample_size,
    zero_failure_sample_size,
)


@pytest.mark.parametrize(
    ("p", "confidence", "n"),
    [(0.05, 0.95, 59), (0.01, 0.95, 299), (0.05, 0.99, 90), (0.10, 0.90, 22), (0.5, 0.75, 2)],
)
def test_zero_failure_plan(p, confidence, n):
    assert zero_failure_sample_size(p, confidence) == n
    # The plan is the smallest n whose zero-failure bound meets p.
    assert clopper_pearson_upper(0, n, confidence) <= p < clopper_pearson_upper(0, n - 1, confidence)


@pytest.mark.parametrize(
    ("failures", "n", "confidence", "upper"),
    [
        (0, 59, 0.95, 0.0495076),  # 1 - 0.05 ** (1 / 59)
        (1, 100, 0.95, 0.0465598),
        (2, 20, 0.95, 0.2826185),  # tables of exact binomial limits: 28.3 %
        (0, 0, 0.95, 1.0),
        (3, 3, 0.95, 1.0),
    ],
)
def test_clopper_pearson_upper_known_values(failures, n, confidence, upper):
    assert clopper_pearson_upper(failures, n, confidence) == pytest.approx(upper, abs=1e-6)


@pytest.mark.parametrize(("failures", "n"), [(1, 100), (4, 37), (10, 10_000)])
def test_clopper_pearson_upper_is_the_exact_binomial_bound(failures, n):
    """At the bound, seeing this few failures or fewer has probability 1 - c."""
    from scipy.stats import binom

    upper = clopper_pearson_upper(failures, n, 0.95)
    assert binom.cdf(failures, n, upper) == pytest.approx(0.05, abs=1e-9)


@pytest.mark.parametrize(
    ("failures", "n", "low", "high"),
    [(0, 10, 0.0, 0.3084971), (1, 100, 0.0002531, 0.0544594), (10, 10, 0.6915029, 1.0)],
)
def test_clopper_pearson_two_sided_known_values(failures, n, low, high):
    assert clopper_pearson_interval(failures, n, 0.95) == pytest.approx((low, high), abs=1e-6)


@pytest.mark.parametrize(("failures", "n"), [(1, 93), (2, 124), (0, 59)])
def test_required_sample_size_grows_with_failures(failures, n):
    assert required_sample_size(0.05, 0.95, failures) == n
    assert bound_holds(failures, n, 0.05, 0.95)
    assert not bound_holds(failures, n - 1, 0.05, 0.95)


@pytest.mark.parametrize(("p", "confidence"), [(0, 0.95), (1, 0.95), (0.05, 1.0), (0.05, 0)])
def test_bad_targets_are_refused(p, confidence):
    with pytest.raises(ValueError):
        zero_failure_sample_size(p, confidence)


def test_cohen_kappa_wikipedia_example():
    """50 items: both yes 20, A yes / B no 5, A no / B yes 10, both no 15 → κ = 0.4."""
    a = ["yes"] * 20 + ["yes"] * 5 + ["no"] * 10 + ["no"] * 15
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)


@pytest.mark.parametrize(
    ("a", "b", "kappa"),
    [
        # p_o = 3/4, p_e = (2·1 + 2·3) / 16 = 1/2 → (0.75 - 0.5) / 0.5
        (["accept", "accept", "reject", "reject"], ["accept", "reject", "reject", "reject"], 0.5),
        (["accept", "reject"], ["accept", "reject"], 1.0),
        # p_o = 0, p_e = 1/2 → -1
        (["accept", "reject"], ["reject", "accept"], -1.0),
        # everyone accepted everything: chance agreement is 1, kappa undefined
        (["accept"] * 3, ["accept"] * 3, None),
    ],
)
def test_cohen_kappa_hand_computed(a, b, kappa):
    assert cohen_kappa(a, b) == (None if kappa is None else pytest.approx(kappa))


def test_fleiss_kappa_wikipedia_example():
    """Fleiss (1971) worked example as on Wikipedia: 10 items, 14 raters, 5 categories → 0.210."""
    table = [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
    assert fleiss_kappa(table) == pytest.approx(0.20993, abs=1e-5)


def test_fleiss_kappa_hand_computed():
    """3 raters, 4 items (accept, reject): P_i = 1, 1/3, 1/3, 1 → P̄ = 2/3;
    p_accept = 7/12, p_reject = 5/12 → P_e = 74/144; κ = (2/3 - 74/144) / (1 - 74/144) = 22/70."""
    table = [[3, 0], [2, 1], [2, 1], [0, 3]]
    assert fleiss_kappa(table) == pytest.approx(22 / 70)


def test_fleiss_needs_equal_raters():
    with pytest.raises(ValueError, match="same number"):
        fleiss_kappa([[2, 0], [1, 2]])


def test_agreement_from_labels_uses_cohen_for_two_and_fleiss_for_more():
    two = {
        1: {"ada": "accept", "bob": "accept"},
        2: {"ada": "accept", "bob": "reject"},
        3: {"ada": "reject", "bob": "reject"},
        4: {"ada": "reject", "bob": "reject"},
        5: {"ada": "skip", "bob": "accept"},
    }
    result = agreement_from_labels(two)
    assert result.items == 4 and result.reviewers == ["ada", "bob"]
    assert result.kappa == pytest.approx(
        cohen_kappa(["accept", "accept", "reject", "reject"], ["accept", "reject", "reject", "reject"])
    )
    three = {
        i: {"ada": x, "bob": y, "cy": z}
        for i, (x, y, z) in enumerate(
            [("accept",) * 3, ("accept", "accept", "reject"), ("accept", "accept", "reject"), ("reject",) * 3]
        )
    }
    result = agreement_from_labels(three)
    assert len(result.pairs) == 3 and result.fleiss_raters == 3
    assert result.kappa == pytest.approx(22 / 70)
    assert not math.isnan(result.kappa)


@pytest.mark.parametrize(("failures", "n", "confidence"), [(0, 59, 0.95), (3, 300, 0.99), (7, 40, 0.8)])
def test_bounds_equal_scipy_stats_beta_ppf(failures, n, confidence):
    from scipy.stats import beta

    assert clopper_pearson_upper(failures, n, confidence) == pytest.approx(
        beta.ppf(confidence, failures + 1, n - failures), rel=1e-12
    )
    low, high = clopper_pearson_interval(failures, n, confidence)
    alpha = 1 - confidence
    assert high == pytest.approx(beta.ppf(1 - alpha / 2, failures + 1, n - failures), rel=1e-12)
    if failures:
        assert low == pytest.approx(beta.ppf(alpha / 2, failures, n - failures + 1), rel=1e-12)
