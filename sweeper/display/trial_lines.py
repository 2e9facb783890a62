"""Which trials get a line of their own in a sweep's log, so that a log stays readable (and a CI
job's output bounded) at any size.

A sweep of up to `EVERY_TRIAL_UP_TO` trials prints a line per trial, as it settles. A larger one
prints its failures (the first `FAILURES_SHOWN`, then how many more), its last trial, and the
progress lines that come every few seconds anyway (display.progress); its table shows the top
trials. Every trial is in MLflow and in the sweep's results.csv, whatever the log shows.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sweeper.core.metrics import Ranking
    from sweeper.core.outcomes import Outcome

log = logging.getLogger(__name__)

EVERY_TRIAL_UP_TO = 200
FAILURES_SHOWN = 20


class TrialLines:
    """The log lines of one sweep's trials (`[n/N] name: scores`)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.failures = 0
        self.told = False  # that lines are left out: said once

    def settled(self, outcome: Outcome, count: int, total: int, ranking: Ranking) -> None:
        """Trial number `count` of `total` settled (its scores shown as `ranking` ranks)."""
        self.total = max(self.total, total)
        if self.total <= EVERY_TRIAL_UP_TO or count >= total:
            log.info("[%d/%d] %s", count, total, outcome.line(ranking))
            return
        if not self.told:
            self.told = True
            log.info(
                "A line per trial is printed for sweeps of up to %d trials: this one prints its "
                "progress, its failures (the first %d) and its last trial; every trial is in "
                "MLflow and in the sweep's results.csv",
                EVERY_TRIAL_UP_TO,
                FAILURES_SHOWN,
            )
        if outcome.ok:
            return
        self.failures += 1
        if self.failures <= FAILURES_SHOWN:
            log.info("[%d/%d] %s", count, total, outcome.line(ranking))
        elif self.failures == FAILURES_SHOWN + 1:
            log.info("More trials failed: the table counts them, results.csv lists them")
