"""Float32 sidecar matrices of cached embeddings, memory-mapped for large searches.

The embedding cache is the `embeddings` table (one float16 blob per (model key, content
hash)). Decoding a million blobs into one float32 array and handing that to a faiss index
would hold the vectors twice (three times with the blobs). Above `service.SPILL_ROWS` rows
the vectors are instead decoded chunk by chunk into a float32 ``.npy`` file beside the
workspace (``<workspace data>/vectors/``, or ``$ASSAY_VECTOR_DIR``) and memory-mapped read-only; `knn` reads it block
by block and releases the pages, so only the index keeps a resident copy.

Consistency: a file's name is a digest of the store, the model key and the ordered content
hashes of its rows. Embedding rows are only ever inserted (never updated or deleted), so
the name fixes the content: a file is reused as long as it exists, and a changed selection
gets a new file. Files are written under a temporary name and renamed when complete; only
the `KEEP` most recently used are kept.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.lib.format import open_memmap

from curation.config import workspace_data_dir

KEEP = 4
SUFFIX = ".f32.npy"
DIR_ENV = "ASSAY_VECTOR_DIR"


def directory_for(url: str) -> Path:
    """Where the matrices of the store at `url` go: $ASSAY_VECTOR_DIR, else vectors/ beside
    the workspace's data."""
    return Path(os.environ.get(DIR_ENV) or workspace_data_dir(url) / "vectors")


def matrix_path(directory: Path, store: str, key: str, hashes: Sequence[str]) -> Path:
    """Where the matrix of `hashes` (in this order) under `key` in `store` lives."""
    digest = hashlib.sha256(f"{store}\0{key}\0{len(hashes)}\0".encode())
    for h in hashes:
        digest.update(h.encode())
        digest.update(b"\n")
    return directory / f"{digest.hexdigest()[:40]}{SUFFIX}"


def open_matrix(path: Path) -> np.ndarray | None:
    """The finished matrix at `path`, memory-mapped read-only (None if there is none)."""
    try:
        matrix = np.load(path, mmap_mode="r")
    except FileNotFoundError:
        return None
    os.utime(path)  # most recently used: kept by `prune`
    return matrix


def create_matrix(path: Path, n: int, dim: int) -> tuple[np.ndarray, Path]:
    """A writable (n, dim) float32 matrix under a temporary name beside `path`; pass the
    temporary path to `finish` once every row is written (or to `discard`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    return open_memmap(partial, mode="w+", dtype=np.float32, shape=(n, dim)), partial


def finish(matrix: np.ndarray, partial: Path, path: Path) -> np.ndarray:
    """Flush, move into place and reopen read-only."""
    if isinstance(matrix, np.memmap):
        matrix.flush()
    del matrix
    os.replace(partial, path)
    prune(path.parent, keep=KEEP, protect=path)
    return np.load(path, mmap_mode="r")


def discard(partial: Path) -> None:
    partial.unlink(missing_ok=True)


def prune(directory: Path, *, keep: int = KEEP, protect: Path | None = None) -> None:
    """Delete all but the `keep` most recently used matrices (never `protect`). An open
    memory map of a deleted file stays valid until it is closed."""
    files = []
    for path in directory.glob(f"*{SUFFIX}"):
        try:
            files.append((path.stat().st_mtime, path))
        except FileNotFoundError:  # pruned by another process meanwhile
            continue
    for _, stale in sorted(files, reverse=True)[keep:]:
        if stale != protect:
            stale.unlink(missing_ok=True)
