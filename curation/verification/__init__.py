"""Verification: default verifier chains per family, the "verify" job over every core,
verdict versions and flips, the store-free `verify-file`, and the demo verification.

Heavy modules (process pools, math workers, sandboxes) are imported only when used."""

from curation.verification.chains import DEFAULT_CHAINS, MAIN_VERIFIER, default_chain, overall_outcome

__all__ = ["DEFAULT_CHAINS", "MAIN_VERIFIER", "default_chain", "overall_outcome"]
