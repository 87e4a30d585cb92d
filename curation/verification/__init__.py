"""Verification: the checks and the machinery that runs them.

* `base` — the `Verifier` interface and the `VERIFIERS` registry; each check says how
  it runs (`execution`: a shared process pool, its own worker pool, the sandbox, remote
  requests), and the pipeline dispatches on that, never on names.
* the checks, one per file: `heuristics` (``quality``), `math` (``math_answer``),
  `code` (``code_tests``), `instruction` (``ifeval``), `judge` (``judge``),
  `consistency` (majority agreement across candidates).
* `chains` — the default verifier chain per family and the overall outcome.
* `pipeline`, `runner`, `jobs` — the "verify" job over every core, verdict versions.
* `report`, `verify_file`, `cli` — pass rates and flips, the store-free `verify-file`.

Importing this package registers every check; heavy modules (process pools, math
workers, sandboxes) are imported only when a check runs."""

from curation.verification import code, heuristics, instruction, judge, math  # noqa: F401 - registration
from curation.verification.base import VERIFIERS, Verifier
from curation.verification.chains import DEFAULT_CHAINS, MAIN_VERIFIER, default_chain, overall_outcome

__all__ = ["DEFAULT_CHAINS", "MAIN_VERIFIER", "VERIFIERS", "Verifier", "default_chain", "overall_outcome"]
