"""Running model-written code safely: a bubblewrap sandbox, the in-sandbox judge,
code extraction and test-strength mutants.

The host never executes model code; see `bwrap` (sandbox and uid pool), `harness`
(the trusted judge that runs inside), `execute` (pass/fail from the judge's report).
"""

from curation.sandbox.bwrap import (
    MODE_BARE,
    MODE_BWRAP,
    MODE_RLIMITS,
    UNSANDBOXED_ENV,
    HarnessRun,
    SandboxError,
    SandboxLimits,
    UidPool,
    probe_bwrap,
    run_harness,
)
from curation.sandbox.execute import CodeJob, CodeResult, resolve_mode, run_code, run_many
from curation.sandbox.extract import extract_code, guess_entry_point
from curation.sandbox.mutants import Mutant, generate_mutants, mutation_check

__all__ = [
    "MODE_BARE",
    "MODE_BWRAP",
    "MODE_RLIMITS",
    "UNSANDBOXED_ENV",
    "CodeJob",
    "CodeResult",
    "HarnessRun",
    "Mutant",
    "SandboxError",
    "SandboxLimits",
    "UidPool",
    "extract_code",
    "generate_mutants",
    "guess_entry_point",
    "mutation_check",
    "probe_bwrap",
    "resolve_mode",
    "run_code",
    "run_harness",
    "run_many",
]
