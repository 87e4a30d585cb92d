"""A fixed 2-D map of embeddings: PCA by default, UMAP on demand.

Both are fitted on the reference set only, so the frame does not move when
batches are added and any two batches drawn on the map are comparable.

PCA (the default) is exact and cheap; component signs are fixed (largest
coefficient positive) so refits on the same data agree.

UMAP (umap-learn) is fitted once per reference set, on at most `UMAP_MAX_FIT` of
its vectors (a seeded sample), and the fitted model is cached: in the process (a
small LRU) and on disk under data/cache/projections/, keyed on a hash of the
exact vectors fitted, the seed, the UMAP parameters, the caller's label (model and
text mode) and the umap-learn / numba versions. Drawing another batch, another
selection, a page rerun or another process therefore loads the model instead of
refitting; a changed reference set gets a new key and a new fit. Reference
points keep their fitted coordinates; every other point (synthetic batches,
reference samples left out of the fit) is placed with `model.transform`, so new
points never move the map. The cache files are joblib pickles of our own fitted
objects (never model output), written atomically (temp file + rename); a file
that fails to load is ignored and refitted. At most `DISK_KEEP` files are kept.

Numba compiles UMAP's kernels on first use in each process. pynndescent's and
some of umap's kernels are cached on disk (numba ``cache=True``); that cache goes
to data/cache/numba unless NUMBA_CACHE_DIR is set, because the default (next to
the installed package) is not writable in every install. Many of umap's kernels
are not cacheable, so the first UMAP in a process still costs tens of seconds of
compilation, even when the fitted model comes from the cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib.metadata import version
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from curation.config import DATA_DIR

MAX_POINTS = 50_000
MAX_FIT = 50_000
UMAP_MAX_FIT = 20_000
#: UMAP parameters; part of the cache key.
UMAP_PARAMS: dict[str, Any] = {"n_components": 2, "n_neighbors": 15, "min_dist": 0.1, "metric": "cosine"}
UMAP_MIN_POINTS = 10
CACHE_DIR = DATA_DIR / "cache" / "projections"
NUMBA_CACHE_DIR = DATA_DIR / "cache" / "numba"
MEMORY_KEEP = 3
DISK_KEEP = 4
_FORMAT = 1

Progress = Callable[[int, int | None, str], None]
log = logging.getLogger(__name__)
_transform_lock = threading.Lock()


@dataclass(frozen=True)
class Projection:
    """A fitted map. For UMAP, `embedding` holds the fitted coordinates of the
    reference rows `fit_rows` and `cache` says where the model came from:
    "fitted" (just now), "memory" or "disk"."""

    mean: np.ndarray
    components: np.ndarray
    explained: np.ndarray
    method: str = "pca"
    model: Any = None
    embedding: np.ndarray | None = None
    fit_rows: np.ndarray | None = None
    cache: str = ""
    fit_seconds: float | None = None
    key: str = ""

    def transform(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if self.model is not None:
            if not len(x):
                return np.zeros((0, 2), dtype=np.float32)
            with _transform_lock:  # the model prepares its search index lazily; one caller at a time
                return np.asarray(self.model.transform(x), dtype=np.float32)
        return (x - self.mean) @ self.components.T

    def place(self, x: np.ndarray, fitted: np.ndarray | None = None) -> np.ndarray:
        """Coordinates of the rows of `x`. `fitted[i]`, when not negative, is the index of
        row i in the fit (a position in `fit_rows`): such rows keep their fitted UMAP
        coordinates; all other rows are transformed."""
        x = np.asarray(x, dtype=np.float32)
        if self.embedding is None or fitted is None:
            return self.transform(x)
        fitted = np.asarray(fitted, dtype=np.int64)
        out = np.zeros((len(x), 2), dtype=np.float32)
        known = fitted >= 0
        out[known] = self.embedding[fitted[known]]
        if (~known).any():
            out[~known] = self.transform(x[~known])
        return out

    def fit_positions(self, n_reference: int) -> np.ndarray:
        """For each of the `n_reference` rows given to the fit: its index in the fit, or -1."""
        pos = np.full(n_reference, -1, dtype=np.int64)
        if self.fit_rows is not None:
            pos[self.fit_rows] = np.arange(len(self.fit_rows))
        return pos


def _fit_subset(n: int, max_fit: int, seed: int) -> np.ndarray:
    if n <= max_fit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, max_fit, replace=False))


def fit_pca(reference: np.ndarray, *, seed: int = 0, max_fit: int = MAX_FIT) -> Projection:
    """Two principal axes of the reference vectors (fitted on at most `max_fit` of them)."""
    ref = np.asarray(reference, dtype=np.float32)
    if len(ref) < 2:
        raise ValueError("the reference set needs at least two embedded samples to fit a map")
    ref = ref[_fit_subset(len(ref), max_fit, seed)]
    mean = ref.mean(axis=0)
    centred = (ref - mean).astype(np.float64)
    eigval, eigvec = np.linalg.eigh(centred.T @ centred / len(ref))
    order = np.argsort(eigval)[::-1][:2]
    components = eigvec[:, order].T
    signs = np.sign(components[np.arange(len(components)), np.abs(components).argmax(axis=1)])
    components = components * signs[:, None]
    explained = eigval[order] / max(eigval.sum(), 1e-12)
    return Projection(mean.astype(np.float32), components.astype(np.float32), explained.astype(np.float32))


# -- UMAP ----------------------------------------------------------------------------------------

_memory: OrderedDict[str, Projection] = OrderedDict()
_memory_lock = threading.Lock()
_fit_lock = threading.Lock()


def _configure_numba_cache() -> None:
    """Point numba's on-disk cache at data/cache/numba unless NUMBA_CACHE_DIR is set.

    Must run before umap (which decorates its kernels at import) is imported."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    try:
        NUMBA_CACHE_DIR.mkdir(parents=True, exist_ok=True)
    except OSError:
        return
    if not os.access(NUMBA_CACHE_DIR, os.W_OK):
        return
    os.environ["NUMBA_CACHE_DIR"] = str(NUMBA_CACHE_DIR)
    if "numba" in sys.modules:
        from numba.core import config  # heavy: only when numba is already loaded

        config.reload_config()


def _import_umap() -> Any:
    _configure_numba_cache()
    import umap  # heavy (numba): loaded only for a UMAP map

    return umap


def _versions() -> dict[str, str]:
    return {name: version(name) for name in ("umap-learn", "numba", "pynndescent")}


def umap_key(vectors: np.ndarray, *, seed: int, n_epochs: int | None, label: str = "") -> str:
    """Cache key of a UMAP fit: a hash of the exact vectors fitted and everything else the fit depends on."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    h = hashlib.sha256()
    meta = {
        "format": _FORMAT,
        "params": UMAP_PARAMS,
        "seed": seed,
        "n_epochs": n_epochs,
        "label": label,
        "shape": list(vectors.shape),
        "versions": _versions(),
    }
    h.update(json.dumps(meta, sort_keys=True).encode())
    h.update(memoryview(vectors).cast("B"))
    return h.hexdigest()


def _remember(key: str, projection: Projection) -> None:
    with _memory_lock:
        _memory[key] = projection
        _memory.move_to_end(key)
        while len(_memory) > MEMORY_KEEP:
            _memory.popitem(last=False)


def _recall(key: str) -> Projection | None:
    with _memory_lock:
        projection = _memory.get(key)
        if projection is not None:
            _memory.move_to_end(key)
        return projection


def clear_memory_cache() -> None:
    """Forget the fitted UMAP models held in this process (the disk cache stays)."""
    with _memory_lock:
        _memory.clear()


def _cache_file(cache_dir: Path, key: str) -> Path:
    return cache_dir / f"umap-{key[:32]}.joblib"


def _load(path: Path, key: str, n_fit: int) -> dict[str, Any] | None:
    """The cached fit at `path`, or None when missing or unusable (then it is refitted)."""
    if not path.exists():
        return None
    _configure_numba_cache()
    try:
        entry = joblib.load(path)
        if not (isinstance(entry, dict) and entry.get("key") == key and entry.get("format") == _FORMAT):
            raise ValueError("not a cached fit of this key")
        embedding = np.asarray(entry["embedding"], dtype=np.float32)
        if (
            embedding.shape != (n_fit, 2)
            or not np.isfinite(embedding).all()
            or not hasattr(entry["model"], "transform")
        ):
            raise ValueError("inconsistent cached fit")
    except Exception as exc:  # any unreadable file is refitted and overwritten
        log.warning("ignoring the UMAP cache file %s (%s); refitting", path, exc)
        return None
    entry["embedding"] = embedding
    return entry


def _save(path: Path, entry: dict[str, Any]) -> None:
    """Write atomically (temp file + rename); a cache that cannot be written only costs a refit later."""
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".umap-", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            joblib.dump(entry, f)
        os.replace(tmp, path)
        tmp = None
        files = sorted(path.parent.glob("umap-*.joblib"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in files[DISK_KEEP:]:
            old.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("could not write the UMAP cache file %s: %s", path, exc)
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def rough_fit_seconds(n: int, n_epochs: int | None = None) -> int:
    """A hint for the page, not a promise: fit time measured on 2 shared CPU cores (384-d vectors;
    300 → ~10 s, 5,000 → 35–90 s, 20,000 → ~60 s with 200 epochs), plus numba's first compile."""
    epochs = n_epochs or (500 if n <= 10_000 else 200)
    return int(round(15 + 1.4e-5 * n * epochs, -1))


def _fitted_or_cached(
    fit_x: np.ndarray, key: str, path: Path, *, seed: int, n_epochs: int | None, progress: Progress | None
) -> Projection:
    entry, cache = _load(path, key, len(fit_x)), "disk"
    if entry is None:
        if progress:
            progress(
                0,
                None,
                f"fitting UMAP on {len(fit_x):,} reference vectors, the first time for this reference "
                f"set (roughly {rough_fit_seconds(len(fit_x), n_epochs):,} s)",
            )
        umap = _import_umap()
        start = time.perf_counter()
        model = umap.UMAP(**UMAP_PARAMS, n_epochs=n_epochs, random_state=seed, n_jobs=1)
        embedding = np.asarray(model.fit_transform(fit_x), dtype=np.float32)
        entry = {
            "format": _FORMAT,
            "key": key,
            "model": model,
            "embedding": embedding,
            "fit_seconds": time.perf_counter() - start,
        }
        _save(path, entry)
        cache = "fitted"
    dim = fit_x.shape[1]
    return Projection(
        np.zeros(dim, np.float32),
        np.zeros((2, dim), np.float32),
        np.zeros(2, np.float32),
        method="umap",
        model=entry["model"],
        embedding=entry["embedding"],
        cache=cache,
        fit_seconds=entry.get("fit_seconds"),
        key=key,
    )


def fit_umap(
    reference: np.ndarray,
    *,
    seed: int = 0,
    max_fit: int = UMAP_MAX_FIT,
    n_epochs: int | None = None,
    label: str = "",
    cache_dir: Path | None = None,
    progress: Progress | None = None,
) -> Projection:
    """UMAP fitted on (at most `max_fit` of) the reference vectors, or the cached fit of the same vectors.

    `label` (e.g. the embedding model and text mode) is part of the cache key; `n_epochs`
    None is umap-learn's default (500 epochs up to 10,000 points, else 200).
    The result's `cache` says whether it was "fitted" just now, or came from "memory" or "disk".
    """
    ref = np.asarray(reference, dtype=np.float32)
    if len(ref) < UMAP_MIN_POINTS:
        raise ValueError(
            f"UMAP needs at least {UMAP_MIN_POINTS} embedded reference samples (there are {len(ref)})"
        )
    rows = _fit_subset(len(ref), max_fit, seed)
    fit_x = np.ascontiguousarray(ref[rows])
    key = umap_key(fit_x, seed=seed, n_epochs=n_epochs, label=label)
    found = _recall(key)
    if found is None:
        with _fit_lock:  # one fit at a time in the process; a second caller then finds the first's result
            found = _recall(key)
            if found is None:
                found = _fitted_or_cached(
                    fit_x,
                    key,
                    _cache_file(cache_dir or CACHE_DIR, key),
                    seed=seed,
                    n_epochs=n_epochs,
                    progress=progress,
                )
                _remember(key, found)
                return replace(found, fit_rows=rows)
    return replace(found, fit_rows=rows, cache="memory")


def sample_points(n: int, max_points: int = MAX_POINTS, seed: int = 0) -> tuple[np.ndarray, bool]:
    """Indices of at most `max_points` of n points (seeded), and whether it was sampled."""
    if n <= max_points:
        return np.arange(n), False
    return np.sort(np.random.default_rng(seed).choice(n, max_points, replace=False)), True
