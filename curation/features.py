"""The features Assay is made of, in one list (as datasette's `DEFAULT_PLUGINS`).

A feature is a package of `curation` that may hold, by convention:

* `cli.py` with `register(subparsers)`: its commands; each parser sets
  `func(args, engine) -> int` (and `needs_store=False` when it works without a store);
* `jobs.py`: importing it registers its job kinds with `curation.jobs.job_kind`.

The command line and the job worker find both from this list; nothing else names them."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

DEFAULT_FEATURES: tuple[str, ...] = (
    "curation.auth",
    "curation.io",
    "curation.jobs",
    "curation.generation",
    "curation.verification",
    "curation.review",
    "curation.diversity",
    "curation.export",
    "curation.demo",
)


def feature_modules(part: str, features: tuple[str, ...] = DEFAULT_FEATURES) -> list[ModuleType]:
    """Each feature's `part` module ("cli" or "jobs"), imported, where the feature has one."""
    names = (f"{feature}.{part}" for feature in features)
    return [importlib.import_module(name) for name in names if importlib.util.find_spec(name) is not None]
