"""The "ifeval" verifier: does a response follow its IFEval-style instructions?

``sample.reference`` is IFEval's own shape::

    {"instruction_id_list": ["punctuation:no_comma", "length_constraints:number_words"],
     "kwargs": [{}, {"relation": "at least", "num_words": 300}]}

Verdict: ``passed`` = every instruction followed (strict), ``score`` = the
fraction followed (strict); ``details["instructions"]`` has the strict and loose
outcome of each instruction and ``details["loose_passed"]`` the loose verdict.
An unknown instruction id or malformed kwargs cannot be judged: ``passed`` is
None and the reason names the id and argument.
"""

from __future__ import annotations

import time
from typing import Any

from curation.data import SampleRecord
from curation.ifeval import InstructionError, build_checkers, evaluate_checkers
from curation.verification.base import VERIFIERS, Execution, Verdict, Verifier


@VERIFIERS.register("ifeval")
class InstructionVerifier(Verifier):
    name = "ifeval"
    version = "1"
    families = ("instruction",)
    execution = Execution.PROCESS_POOL

    def verify(self, sample: SampleRecord) -> Verdict:
        started = time.perf_counter()
        verdict = self._judge(sample)
        verdict.duration_ms = (time.perf_counter() - started) * 1000.0
        return verdict

    def _judge(self, sample: SampleRecord) -> Verdict:
        reference: Any = sample.reference
        if not isinstance(reference, dict):
            return Verdict(None, reason="reference must be an object with instruction_id_list and kwargs")
        instruction_ids = reference.get("instruction_id_list")
        if not instruction_ids:
            return Verdict(None, reason="no constraints to check")
        try:
            checkers = build_checkers(instruction_ids, reference.get("kwargs"))
        except InstructionError as exc:
            return Verdict(
                None,
                reason=f"cannot judge: {exc}",
                details={"instruction_id": exc.instruction_id, "argument": exc.argument},
            )
        response = sample.response if isinstance(sample.response, str) else ""
        evaluation = evaluate_checkers(response, checkers)
        outcomes = evaluation.outcomes
        total = len(outcomes)
        followed = sum(o.strict for o in outcomes)
        loose_followed = sum(o.loose for o in outcomes)
        if evaluation.strict_passed:
            reason = f"all {total} instruction(s) followed"
        else:
            failures = "; ".join(f"{o.instruction_id} ({o.reason})" for o in outcomes if not o.strict)
            reason = f"{followed}/{total} instruction(s) followed (loose: {loose_followed}/{total}); not followed: {failures}"
        return Verdict(
            evaluation.strict_passed,
            score=evaluation.strict_score,
            reason=reason,
            details={
                "instructions": [o.to_dict() for o in outcomes],
                "loose_passed": evaluation.loose_passed,
                "loose_score": evaluation.loose_score,
            },
        )
