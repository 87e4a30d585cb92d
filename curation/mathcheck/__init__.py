"""Math answer checking built on math-verify, with guards against its known false
positives and worker processes with hard time limits.

Entry points: `curation.verification.math` (the ``math_answer`` verifier and
``verify_many``) and `curation.verification.consistency`. Importing this package is
cheap: math-verify and sympy are imported only inside the worker processes.
"""

from curation.mathcheck.config import MathCheckConfig
from curation.mathcheck.pool import MathVerifyPool, shared_pool

__all__ = ["MathCheckConfig", "MathVerifyPool", "shared_pool"]
