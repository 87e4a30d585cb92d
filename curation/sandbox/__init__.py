"""Running model-written code safely: a bubblewrap sandbox, the in-sandbox judge,
code extraction and test-strength mutants.

The host never executes model code; see `bwrap` (sandbox and uid pool, its limits and
modes), `harness` (the trusted judge that runs inside), `execute` (pass/fail from the
judge's report). The package exports what callers use: running code against tests,
extracting it from a response, and mutants.
"""

from curation.sandbox.execute import CodeJob, CodeResult, resolve_mode, run_code, run_many
from curation.sandbox.extract import extract_code, guess_entry_point
from curation.sandbox.mutants import Mutant, generate_mutants, mutation_check

__all__ = [
    "CodeJob",
    "CodeResult",
    "Mutant",
    "extract_code",
    "generate_mutants",
    "guess_entry_point",
    "mutation_check",
    "resolve_mode",
    "run_code",
    "run_many",
]
