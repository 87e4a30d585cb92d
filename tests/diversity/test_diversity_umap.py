"""UMAP on the Diversity map: fitted once per reference set and cached (in memory and on
disk), new points placed with `transform`. Small data and few epochs keep it quick; the
first UMAP in a process still pays numba's compilation (tens of seconds)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest

from curation.diversity import projection
from curation.diversity.projection import clear_memory_cache, fit_umap
from tests.helpers import ADMIN

DIM = 384
EPOCHS = 30


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


CENTRES = unit(np.random.default_rng(0).standard_normal((3, DIM)))


def clustered(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n unit vectors around three (nearly orthogonal) centres, and their cluster labels."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    return unit(CENTRES[labels] + rng.standard_normal((n, DIM)) / math.sqrt(DIM)), labels


REFERENCE, LABELS = clustered(300, seed=1)


@pytest.fixture(autouse=True)
def fresh_memory():
    clear_memory_cache()
    yield
    clear_memory_cache()


@pytest.fixture
def fits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts calls of umap.UMAP.fit (fit_transform goes through it)."""
    umap = projection._import_umap()
    calls: list[int] = []
    original = umap.UMAP.fit

    def counting_fit(self, *args, **kwargs):
        calls.append(len(args[0]))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(umap.UMAP, "fit", counting_fit)
    return calls


def test_same_reference_is_fitted_once_then_loaded(tmp_path: Path, fits: list[int]) -> None:
    first = fit_umap(REFERENCE, n_epochs=EPOCHS, cache_dir=tmp_path)
    assert first.cache == "fitted" and fits == [300] and first.fit_seconds is not None
    assert first.embedding.shape == (300, 2) and np.isfinite(first.embedding).all()
    assert [p.name for p in tmp_path.iterdir()] == [f"umap-{first.key[:32]}.joblib"], (
        "no temp file left behind"
    )

    again = fit_umap(REFERENCE.copy(), n_epochs=EPOCHS, cache_dir=tmp_path)
    assert again.cache == "memory" and again.key == first.key

    clear_memory_cache()  # as another process would start
    loaded = fit_umap(REFERENCE.copy(), n_epochs=EPOCHS, cache_dir=tmp_path)
    assert loaded.cache == "disk" and fits == [300]
    np.testing.assert_array_equal(loaded.embedding, first.embedding)
    new, _ = clustered(12, seed=2)
    np.testing.assert_allclose(loaded.transform(new), first.transform(new), atol=1e-4)


@pytest.mark.parametrize(
    "change",
    [
        {"reference": np.roll(REFERENCE, 1, axis=0)},
        {"reference": REFERENCE[:-1]},
        {"seed": 1},
        {"label": "other-model|prompt"},
        {"n_epochs": EPOCHS + 1},
    ],
    ids=["reordered", "one-fewer", "seed", "label", "epochs"],
)
def test_a_different_reference_or_setting_refits(tmp_path: Path, fits: list[int], change: dict) -> None:
    base = fit_umap(REFERENCE, n_epochs=EPOCHS, cache_dir=tmp_path)
    kwargs = {"n_epochs": EPOCHS, **change}
    other = fit_umap(kwargs.pop("reference", REFERENCE), cache_dir=tmp_path, **kwargs)
    assert other.cache == "fitted" and other.key != base.key and len(fits) == 2
    assert len(list(tmp_path.glob("umap-*.joblib"))) == 2


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x80\x04 not a pickle at all")


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _other_object(path: Path) -> None:
    import joblib

    joblib.dump({"format": 1, "key": "someone else's", "model": None, "embedding": np.zeros((3, 2))}, path)


@pytest.mark.parametrize("spoil", [_garbage, _truncated, _other_object])
def test_a_corrupt_cache_file_is_ignored_and_refitted(tmp_path: Path, fits: list[int], spoil) -> None:
    first = fit_umap(REFERENCE, n_epochs=EPOCHS, cache_dir=tmp_path)
    (path,) = tmp_path.glob("umap-*.joblib")
    spoil(path)
    clear_memory_cache()
    refitted = fit_umap(REFERENCE, n_epochs=EPOCHS, cache_dir=tmp_path)
    assert refitted.cache == "fitted" and len(fits) == 2
    np.testing.assert_allclose(refitted.embedding, first.embedding, atol=1e-4)  # seeded: the same fit
    clear_memory_cache()
    assert fit_umap(REFERENCE, n_epochs=EPOCHS, cache_dir=tmp_path).cache == "disk", "the file was rewritten"


def test_an_unwritable_cache_only_costs_a_refit(tmp_path: Path, fits: list[int]) -> None:
    (tmp_path / "a-file").write_text("")
    cache_dir = tmp_path / "a-file" / "projections"
    assert fit_umap(REFERENCE, n_epochs=EPOCHS, cache_dir=cache_dir).cache == "fitted"
    clear_memory_cache()
    assert fit_umap(REFERENCE, n_epochs=EPOCHS, cache_dir=cache_dir).cache == "fitted" and len(fits) == 2


def test_new_points_are_transformed_near_their_cluster(tmp_path: Path) -> None:
    fitted = fit_umap(REFERENCE, n_epochs=EPOCHS, cache_dir=tmp_path)
    new, new_labels = clustered(30, seed=3)
    xy = fitted.place(new, np.full(len(new), -1))
    assert xy.shape == (30, 2) and np.isfinite(xy).all()
    centroids = np.stack([fitted.embedding[LABELS == c].mean(axis=0) for c in range(3)])
    nearest = np.linalg.norm(xy[:, None, :] - centroids[None], axis=2).argmin(axis=1)
    assert (nearest == new_labels).all()


def test_reference_points_keep_their_fitted_coordinates(tmp_path: Path) -> None:
    fitted = fit_umap(REFERENCE, n_epochs=EPOCHS, max_fit=200, cache_dir=tmp_path)
    assert len(fitted.fit_rows) == 200 and fitted.embedding.shape == (200, 2)
    positions = fitted.fit_positions(len(REFERENCE))
    assert (positions >= 0).sum() == 200
    xy = fitted.place(REFERENCE, positions)
    np.testing.assert_array_equal(xy[fitted.fit_rows], fitted.embedding)
    left_out = positions < 0
    assert np.isfinite(xy[left_out]).all()
    centroids = np.stack([fitted.embedding[LABELS[fitted.fit_rows] == c].mean(axis=0) for c in range(3)])
    nearest = np.linalg.norm(xy[left_out][:, None, :] - centroids[None], axis=2).argmin(axis=1)
    assert (nearest == LABELS[left_out]).all()


def test_too_small_a_reference_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least"):
        fit_umap(REFERENCE[: projection.UMAP_MIN_POINTS - 1], cache_dir=tmp_path)


def test_numba_cache_is_on_disk_and_a_set_location_is_respected(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fit_umap(REFERENCE, n_epochs=EPOCHS, cache_dir=tmp_path)
    cache = Path(os.environ["NUMBA_CACHE_DIR"])
    assert any(cache.rglob("*.nbi")), f"numba wrote no cache index under {cache}"
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "elsewhere"))
    projection._configure_numba_cache()
    assert os.environ["NUMBA_CACHE_DIR"] == str(tmp_path / "elsewhere")


# -- the map of a store: reference points fitted, batches transformed, PCA when UMAP fails ------


@pytest.fixture
def mapped_store(sqlite_engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """30 real samples and a batch of 12, embedded with the bundled model; caches in tmp_path."""
    import json

    from curation.config import DEMO_DIR
    from curation.diversity import embed as embed_module
    from curation.diversity.service import Selection, embed_selection
    from curation.io.importer import import_file

    monkeypatch.setattr(embed_module, "CACHE_DIR", tmp_path / "embed-cache")
    monkeypatch.setenv("ASSAY_EMBED_BACKEND", "torch-fp32")  # no calibration: any vectors will do here
    monkeypatch.setattr(projection, "CACHE_DIR", tmp_path / "projections")
    records = [json.loads(line) for line in (DEMO_DIR / "reference_math.jsonl").read_text().splitlines()][:42]
    for name, rows, origin in (
        ("reference: math", records[:30], "real"),
        ("batch", records[30:], "synthetic"),
    ):
        path = tmp_path / f"{origin}.jsonl"
        path.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "id"}) + "\n" for r in rows))
        batch_id = import_file(sqlite_engine, ADMIN, path, name, origin=origin)["batch_id"]
    embed_selection(sqlite_engine, Selection())
    return sqlite_engine, Selection(batch_ids=(batch_id,))


def test_map_points_with_umap_fits_once_and_places_the_batch(mapped_store, fits: list[int]) -> None:
    from curation.diversity.service import map_points

    engine, selection = mapped_store
    messages: list[str] = []
    data = map_points(
        engine,
        selection,
        method="umap",
        umap_epochs=EPOCHS,
        progress=lambda _d, _t, message: messages.append(message),
    )
    assert data.method == "umap" and data.cache == "fitted" and data.n_fit == 30 and not data.fallback
    assert data.total == 42 and len(data.x) == 42 and np.isfinite(data.x).all() and np.isfinite(data.y).all()
    assert any("fitting UMAP on 30" in m for m in messages) and any("placing 12" in m for m in messages)
    again = map_points(engine, selection, method="umap", umap_epochs=EPOCHS)
    assert again.cache == "memory" and fits == [30]
    np.testing.assert_allclose(again.x[:30], data.x[:30])
    batch_only = map_points(engine, selection, method="umap", umap_epochs=EPOCHS, include_reference=False)
    np.testing.assert_allclose(batch_only.x, data.x[30:], atol=1e-4)


def test_map_points_falls_back_to_pca_with_the_reason(mapped_store, monkeypatch: pytest.MonkeyPatch) -> None:
    from curation.diversity.service import map_points

    engine, selection = mapped_store
    monkeypatch.setattr(projection, "UMAP_MIN_POINTS", 100)
    data = map_points(engine, selection, method="umap")
    assert data.method == "pca" and "at least 100 embedded reference samples" in data.fallback
    assert len(data.x) == 42
    with pytest.raises(ValueError, match="unknown map method"):
        map_points(engine, selection, method="tsne")
