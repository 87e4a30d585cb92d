"""Verifiers: named, versioned checks of one sample (see `curation.verifiers.base`).

Importing this package registers every implementation in `VERIFIERS`:
``quality`` (heuristics), ``math_answer``, ``code_tests``, ``ifeval`` and ``judge``.

One import cycle is handled here: `curation.mathcheck.pool` imports `Verdict`
from `curation.verifiers.base`, so a process that starts from `curation.mathcheck`
(its worker processes do) enters this package while the pool module is only half
defined, and `curation.verifiers.math`, which needs the finished pool, cannot be
imported yet. In that case the math verifier is registered by `load_verifiers()`
(which every caller that looks verifiers up by name goes through) or by importing
`curation.verifiers.math` directly.
"""

from __future__ import annotations

import importlib
import sys

from curation.verifiers import code, heuristics, instruction, judge
from curation.verifiers.base import VERIFIERS, Verdict, Verifier

#: Every implementation module; `load_verifiers` imports them all.
VERIFIER_MODULES: tuple[str, ...] = (
    "curation.verifiers.heuristics",
    "curation.verifiers.math",
    "curation.verifiers.code",
    "curation.verifiers.instruction",
    "curation.verifiers.judge",
)


def _math_pool_half_imported() -> bool:
    pool = sys.modules.get("curation.mathcheck.pool")
    return pool is not None and not hasattr(pool, "shared_pool")


def load_verifiers() -> list[str]:
    """Import every implementation module (idempotent); the registered names."""
    for module in VERIFIER_MODULES:
        importlib.import_module(module)
    return VERIFIERS.names()


if not _math_pool_half_imported():
    from curation.verifiers import math  # noqa: F401 - registration

__all__ = [
    "VERIFIERS",
    "VERIFIER_MODULES",
    "Verdict",
    "Verifier",
    "code",
    "heuristics",
    "instruction",
    "judge",
    "load_verifiers",
]
