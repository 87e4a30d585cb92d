"""Diversity metrics, warnings, the collapse monitor and the map on synthetic vectors with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from curation.diversity.collapse import GenerationPoint, collapse_report, real_share_of, slope
from curation.diversity.knn import build_index, drop_self, knn, search
from curation.diversity.metrics import compare, distinct_n, prdc, spread, vendi_score
from curation.diversity.projection import fit_pca, sample_points
from curation.diversity.thresholds import DiversityThresholds

DIM = 64


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def mixture(
    rng: np.random.Generator, n: int, clusters: np.ndarray, centres: np.ndarray, noise: float = 0.6
) -> np.ndarray:
    labels = rng.choice(clusters, n)
    return unit(
        centres[labels] + noise * rng.standard_normal((n, centres.shape[1])) / math.sqrt(centres.shape[1])
    )


@pytest.fixture
def centres() -> np.ndarray:
    return unit(np.random.default_rng(0).standard_normal((30, DIM)))


@pytest.mark.parametrize("k", [1, 3, 8, 20])
def test_vendi_of_k_orthogonal_clusters_is_k(k: int) -> None:
    points = np.repeat(np.eye(DIM, dtype=np.float32)[:k], 7, axis=0)
    assert vendi_score(points) == pytest.approx(k, rel=1e-6)


def test_vendi_of_identical_points_is_one_and_grows_with_spread() -> None:
    rng = np.random.default_rng(1)
    same = np.tile(unit(rng.standard_normal((1, DIM))), (50, 1))
    assert vendi_score(same) == pytest.approx(1.0)
    assert vendi_score(unit(rng.standard_normal((200, DIM)))) > 30


def test_vendi_linear_form_matches_the_kernel_form() -> None:
    x = unit(np.random.default_rng(2).standard_normal((40, DIM)))
    eig = np.linalg.eigvalsh(x @ x.T / len(x))
    eig = eig[eig > 1e-12]
    assert vendi_score(x) == pytest.approx(float(np.exp(-(eig * np.log(eig)).sum())), rel=1e-4)


@pytest.mark.parametrize(
    ("texts", "n", "expected"),
    [
        (["a b c", "a b d"], 1, 4 / 6),
        (["a b c", "a b d"], 2, 3 / 4),
        (["Same words", "same WORDS"], 1, 2 / 4),
        (["one"], 2, 0.0),
    ],
)
def test_distinct_n(texts: list[str], n: int, expected: float) -> None:
    assert distinct_n(texts, n) == pytest.approx(expected)


def test_spread_of_opposite_points_is_one() -> None:
    assert spread(np.array([[1.0, 0.0], [-1.0, 0.0]])) == pytest.approx(1.0)
    assert spread(np.array([[0.0, 1.0]] * 3)) == pytest.approx(0.0)


def test_prdc_same_distribution_versus_narrowed(centres: np.ndarray) -> None:
    rng = np.random.default_rng(3)
    real = mixture(rng, 400, np.arange(30), centres)
    same = prdc(real, mixture(rng, 400, np.arange(30), centres))
    narrow = prdc(real, mixture(rng, 400, np.array([0]), centres))
    assert same["coverage"] > 0.8 and same["precision"] > 0.8 and same["recall"] > 0.8
    assert narrow["coverage"] < 0.2 and narrow["recall"] < 0.2
    assert narrow["precision"] > 0.8  # narrow samples are still realistic


def test_diverse_selection_raises_no_warning(centres: np.ndarray) -> None:
    rng = np.random.default_rng(4)
    report = compare(mixture(rng, 300, np.arange(30), centres), mixture(rng, 600, np.arange(30), centres))
    assert report.warnings == []
    assert report.n_compared == 300 and report.sampled
    assert report.metrics["vendi"]["ratio"] == pytest.approx(1.0, abs=0.1)


def test_narrowed_selection_raises_vendi_spread_coverage_and_cluster_warnings(centres: np.ndarray) -> None:
    rng = np.random.default_rng(5)
    report = compare(mixture(rng, 300, np.array([2, 7]), centres), mixture(rng, 300, np.arange(30), centres))
    codes = {w.code for w in report.warnings}
    assert {"vendi", "spread", "coverage", "empty_clusters"} <= codes
    assert "duplicates" not in codes
    for w in report.warnings:
        assert w.message and w.threshold is not None


def test_duplicate_share_warning(centres: np.ndarray) -> None:
    rng = np.random.default_rng(6)
    syn = mixture(rng, 200, np.arange(30), centres)
    syn[100:140] = unit(syn[:40] + 0.01 * rng.standard_normal((40, DIM)))  # 40 near-copies: 80 of 200 rows
    report = compare(syn, mixture(rng, 200, np.arange(30), centres))
    assert report.metrics["duplicate_share"]["synthetic"] >= 0.4
    assert "duplicates" in {w.code for w in report.warnings}


def test_equal_size_subsampling_is_seeded(centres: np.ndarray) -> None:
    rng = np.random.default_rng(7)
    syn, ref = mixture(rng, 120, np.arange(30), centres), mixture(rng, 500, np.arange(30), centres)
    a, b = compare(syn, ref, seed=11), compare(syn, ref, seed=11)
    assert a.to_dict()["metrics"] == b.to_dict()["metrics"]
    assert a.n_compared == 120 and len(a.arrays["ref_index"]) == 120


def test_lengths_and_distinct_enter_the_report(centres: np.ndarray) -> None:
    rng = np.random.default_rng(8)
    syn, ref = mixture(rng, 40, np.arange(30), centres), mixture(rng, 40, np.arange(30), centres)
    report = compare(
        syn,
        ref,
        ["same template text"] * 40,
        [f"real text number {i} about topic {i % 7}" for i in range(40)],
        syn_lengths={"response": np.full(40, 10)},
        ref_lengths={"response": np.full(40, 40)},
    )
    assert report.metrics["response_length"]["ratio"] == pytest.approx(0.25)
    assert report.metrics["distinct_2"]["ratio"] < 0.2
    assert report.to_dict()["lengths"]["response"]["reference"]["median"] == 40


def test_thresholds_are_configurable(centres: np.ndarray) -> None:
    rng = np.random.default_rng(9)
    syn, ref = (
        mixture(rng, 200, np.array([1, 2, 3, 4, 5, 6]), centres),
        mixture(rng, 200, np.arange(30), centres),
    )
    strict = compare(syn, ref, thresholds=DiversityThresholds(vendi_ratio_min=0.99))
    lax = compare(syn, ref, thresholds=DiversityThresholds(vendi_ratio_min=0.01))
    assert "vendi" in {w.code for w in strict.warnings}
    assert "vendi" not in {w.code for w in lax.warnings}


# -- collapse ------------------------------------------------------------------------------


def _points(
    vendi: list[float], coverage: list[float], shares: list[float | None] | None = None
) -> list[GenerationPoint]:
    shares = shares or [None] * len(vendi)
    return [
        GenerationPoint(g, [g], [f"gen{g}"], {"vendi_ratio": v, "coverage": c, "spread_ratio": 1.0}, s)
        for g, (v, c, s) in enumerate(zip(vendi, coverage, shares, strict=True))
    ]


def test_collapse_warning_on_narrowing_generations(centres: np.ndarray) -> None:
    """Each generation is drawn from fewer clusters than the last: Vendi and coverage fall."""
    rng = np.random.default_rng(10)
    ref = mixture(rng, 300, np.arange(30), centres)
    points = []
    for gen, n_clusters in enumerate([30, 20, 12, 6]):
        report = compare(mixture(rng, 300, np.arange(n_clusters), centres), ref)
        points.append(
            GenerationPoint(
                gen,
                [gen],
                [f"g{gen}"],
                {
                    "vendi_ratio": report.metrics["vendi"]["ratio"],
                    "coverage": report.metrics["coverage"]["synthetic"],
                    "spread_ratio": report.metrics["spread"]["ratio"],
                },
            )
        )
    result = collapse_report(points)
    codes = {w.code for w in result.warnings}
    assert "collapse_trend:vendi_ratio" in codes and "collapse_trend:coverage" in codes
    assert result.trends["vendi_ratio"]["relative_slope"] < 0


def test_no_collapse_warning_when_stable() -> None:
    assert collapse_report(_points([1.0, 1.01, 0.99, 1.0], [0.9, 0.91, 0.9, 0.92])).warnings == []


def test_single_large_drop_warns_even_with_two_generations() -> None:
    result = collapse_report(_points([1.0, 0.7], [0.9, 0.9]))
    assert [w.code for w in result.warnings] == ["collapse_drop:vendi_ratio"]


def test_slope_needs_three_generations() -> None:
    result = collapse_report(_points([1.0, 0.95], [0.9, 0.86]))
    assert not any(w.code.startswith("collapse_trend") for w in result.warnings)


def test_real_data_being_replaced_warns() -> None:
    result = collapse_report(_points([1.0, 1.0, 1.0], [0.9, 0.9, 0.9], [1.0, 0.5, 0.1]))
    assert "real_replaced" in {w.code for w in result.warnings}
    kept = collapse_report(_points([1.0, 1.0, 1.0], [0.9, 0.9, 0.9], [0.5, 0.5, 0.55]))
    assert kept.warnings == []


@pytest.mark.parametrize(
    ("lineage", "expected"),
    [
        ({"real_share": 0.25}, 0.25),
        ({"few_shot_sources": {"real": 3, "accepted": 1}}, 0.75),
        ({"sources": {"real": 0, "synthetic": 4}}, 0.0),
        ({"export_plan": {"real_share": 0.6}}, 0.6),
        ({"few_shot_from": "accepted"}, 0.0),
        ({"few_shot_from": "real"}, 1.0),
        ({}, None),
        (None, None),
    ],
)
def test_real_share_of_lineage(lineage: dict | None, expected: float | None) -> None:
    assert real_share_of(lineage) == expected


def test_least_squares_slope() -> None:
    assert slope([0, 1, 2, 3], [3, 2, 1, 0]) == pytest.approx(-1.0)
    assert slope([1], [5]) == 0.0


# -- neighbours and map ----------------------------------------------------------------------


@pytest.mark.parametrize("exact", [True, False])
def test_knn_finds_planted_near_copies(exact: bool) -> None:
    rng = np.random.default_rng(12)
    x = unit(rng.standard_normal((3000, DIM)))
    x[2000:2050] = unit(x[:50] + 0.02 * rng.standard_normal((50, DIM)))
    index = build_index(x, exact=exact)
    sims, idx = drop_self(*search(index, x, 3), 2)
    found = sum(int(idx[2000 + i, 0] == i) for i in range(50))
    assert found >= 48
    assert (sims[2000:2050, 0] > 0.95).all()


def test_knn_against_other_set() -> None:
    base = np.eye(4, dtype=np.float32)
    sims, idx = knn(base, np.array([[0.0, 0.9, 0.1, 0.0]], dtype=np.float32), k=2)
    assert idx[0, 0] == 1


def test_pca_axes_are_fixed_by_the_reference() -> None:
    rng = np.random.default_rng(13)
    ref = unit(rng.standard_normal((300, DIM)) * np.linspace(3, 0.1, DIM))
    a, b = fit_pca(ref), fit_pca(ref.copy())
    batch = unit(rng.standard_normal((20, DIM)))
    np.testing.assert_allclose(a.transform(batch), b.transform(batch), atol=1e-5)
    assert a.explained[0] >= a.explained[1]


def test_sample_points_caps_and_reports() -> None:
    rows, sampled = sample_points(10, max_points=50)
    assert not sampled and list(rows) == list(range(10))
    rows, sampled = sample_points(1000, max_points=100, seed=1)
    assert sampled and len(rows) == 100 and len(set(rows.tolist())) == 100
