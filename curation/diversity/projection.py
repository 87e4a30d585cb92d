"""A fixed 2-D map of embeddings.

PCA is fitted on the reference set only, so the axes do not move when batches
are added and any two batches drawn on the map are comparable. Component signs
are fixed (largest coefficient positive) so refits on the same data agree.
UMAP is offered on demand when umap-learn is installed; it is not a dependency.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_POINTS = 50_000
MAX_FIT = 50_000


@dataclass(frozen=True)
class Projection:
    mean: np.ndarray
    components: np.ndarray
    explained: np.ndarray
    method: str = "pca"
    model: Any = None

    def transform(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if self.model is not None:
            return np.asarray(self.model.transform(x), dtype=np.float32)
        return (x - self.mean) @ self.components.T


def fit_pca(reference: np.ndarray, *, seed: int = 0, max_fit: int = MAX_FIT) -> Projection:
    """Two principal axes of the reference vectors (fitted on at most `max_fit` of them)."""
    ref = np.asarray(reference, dtype=np.float32)
    if len(ref) < 2:
        raise ValueError("the reference set needs at least two embedded samples to fit a map")
    if len(ref) > max_fit:
        ref = ref[np.sort(np.random.default_rng(seed).choice(len(ref), max_fit, replace=False))]
    mean = ref.mean(axis=0)
    centred = (ref - mean).astype(np.float64)
    eigval, eigvec = np.linalg.eigh(centred.T @ centred / len(ref))
    order = np.argsort(eigval)[::-1][:2]
    components = eigvec[:, order].T
    signs = np.sign(components[np.arange(len(components)), np.abs(components).argmax(axis=1)])
    components = components * signs[:, None]
    explained = eigval[order] / max(eigval.sum(), 1e-12)
    return Projection(mean.astype(np.float32), components.astype(np.float32), explained.astype(np.float32))


def umap_available() -> bool:
    try:
        import umap  # noqa: F401
    except ImportError:
        return False
    return True


def fit_umap(reference: np.ndarray, *, seed: int = 0, max_fit: int = 20_000) -> Projection:
    """UMAP fitted on the reference set (needs umap-learn, which is optional)."""
    if not umap_available():
        raise RuntimeError("UMAP needs the optional package umap-learn, which is not installed; the PCA map is shown instead")
    import umap

    ref = np.asarray(reference, dtype=np.float32)
    if len(ref) > max_fit:
        ref = ref[np.sort(np.random.default_rng(seed).choice(len(ref), max_fit, replace=False))]
    model = umap.UMAP(n_components=2, metric="cosine", random_state=seed).fit(ref)
    return Projection(np.zeros(ref.shape[1], np.float32), np.zeros((2, ref.shape[1]), np.float32),
                      np.zeros(2, np.float32), method="umap", model=model)


def sample_points(n: int, max_points: int = MAX_POINTS, seed: int = 0) -> tuple[np.ndarray, bool]:
    """Indices of at most `max_points` of n points (seeded), and whether it was sampled."""
    if n <= max_points:
        return np.arange(n), False
    return np.sort(np.random.default_rng(seed).choice(n, max_points, replace=False)), True
