"""The byte-budgeted LRU behind the app server's caches (the caches themselves:
`test_diversity_app_caches`)."""

from __future__ import annotations

import threading

import pytest

from curation.diversity.lru import MB, ByteBudgetLRU, budget_from_env


def test_the_least_recently_used_entries_go_once_the_sizes_pass_the_budget():
    cache: ByteBudgetLRU[str, bytes] = ByteBudgetLRU(100, len)
    for key in "abc":
        cache.get_or_build(key, lambda: b"x" * 40)
    assert "a" not in cache and "b" in cache and "c" in cache
    assert cache.total_bytes == 80
    cache.get_or_build("b", lambda: pytest.fail("b is cached"))
    cache.get_or_build("d", lambda: b"y" * 40)
    assert "c" not in cache and "b" in cache and "d" in cache


def test_an_entry_larger_than_the_budget_is_returned_but_not_kept():
    cache: ByteBudgetLRU[str, bytes] = ByteBudgetLRU(100, len)
    cache.get_or_build("small", lambda: b"s" * 10)
    assert cache.get_or_build("huge", lambda: b"h" * 500) == b"h" * 500
    assert "huge" not in cache and "small" in cache
    assert cache.total_bytes == 10


def test_an_entry_older_than_its_max_age_is_built_again():
    now = [0.0]
    cache: ByteBudgetLRU[str, int] = ByteBudgetLRU(MB, lambda _: 1, max_age_seconds=60, clock=lambda: now[0])
    builds = iter(range(10))
    assert cache.get_or_build("k", lambda: next(builds)) == 0
    now[0] = 59.0
    assert cache.get_or_build("k", lambda: next(builds)) == 0
    now[0] = 60.0
    assert cache.get_or_build("k", lambda: next(builds)) == 1
    assert cache.total_bytes == 1


def test_a_failed_build_is_not_kept_and_is_tried_again():
    cache: ByteBudgetLRU[str, int] = ByteBudgetLRU(MB, lambda _: 1)

    def broken() -> int:
        raise RuntimeError("model missing")

    with pytest.raises(RuntimeError, match="model missing"):
        cache.get_or_build("k", broken)
    assert "k" not in cache
    assert cache.get_or_build("k", lambda: 7) == 7


def test_threads_asking_for_one_key_at_once_share_one_build():
    cache: ByteBudgetLRU[str, object] = ByteBudgetLRU(MB, lambda _: 1)
    builds: list[object] = []
    release = threading.Event()

    def build() -> object:
        builds.append(object())
        release.wait()
        return builds[-1]

    results: list[object] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get_or_build("k", build))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    release.set()
    for thread in threads:
        thread.join()
    assert len(builds) == 1
    assert len(results) == 8 and all(result is builds[0] for result in results)


@pytest.mark.parametrize(("raw", "expected"), [("", 256 * MB), ("64", 64 * MB), ("0.5", MB // 2), ("0", 0)])
def test_budgets_come_from_the_environment_in_megabytes(monkeypatch, raw, expected):
    monkeypatch.setenv("ASSAY_TEST_CACHE_MB", raw)
    assert budget_from_env("ASSAY_TEST_CACHE_MB", 256) == expected


@pytest.mark.parametrize("raw", ["lots", "-1"])
def test_a_budget_that_is_not_a_size_is_refused_with_the_variable_named(monkeypatch, raw):
    monkeypatch.setenv("ASSAY_TEST_CACHE_MB", raw)
    with pytest.raises(ValueError, match="ASSAY_TEST_CACHE_MB"):
        budget_from_env("ASSAY_TEST_CACHE_MB", 256)
