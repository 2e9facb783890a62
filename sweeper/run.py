"""Hands a plan to the executor its backend names and reports what came of it."""

from __future__ import annotations

from sweeper.errors import SweeperError
from sweeper.outcome import SweepResult
from sweeper.plan import Plan
from sweeper.results import print_results


def run_plan(plan: Plan) -> SweepResult:
    """Execute the plan; bad input ends in a SweeperError naming it, failed trials are reported."""
    if plan.settings.backend == "local":
        from sweeper.local import run_local

        result = run_local(plan)
    else:  # build_plan only lets known backends through
        raise SweeperError(f"backend={plan.settings.backend} has no executor")
    if any(o.status != "NOT_RUN" for o in result.outcomes):
        print_results(result)
    if result.preprocess_errors:
        raise SweeperError(result.preprocess_errors[0])
    return result
