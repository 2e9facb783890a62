"""Successive halving over a grid's configurations (search=halving), as scikit-learn's
HalvingGridSearchCV schedules it, decided the same whatever order trials finish in.

Every configuration starts at rung 0 on the least resource; the best ceil(n/`factor`) of a
rung's n go on to the next with `factor` times more, until the last rung's full resource, where a
configuration is trained like a grid trial (CV, then the test rows and a model). The ranking is
the sweep's (CV mean of its metric), ties broken by the configuration's place in the plan.

Without barriers between rungs: a configuration is promoted as soon as it is certain to be in its
rung's top ceil(n/factor) — fewer of the rung's configurations are better than it than that
number, counting every one not finished yet as better — and stopped as soon as that many
finished better. So workers go on with the next rung while a rung's last trials still run,
and the survivors are exactly those of the rung-by-rung algorithm: the same on any number of
workers, on a re-run, and on the executor that runs rungs as stages. (ASHA promotes whatever is
in the top of those finished so far; its survivors depend on which trial happened to finish
first.)
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from sweeper.core.metrics import ProblemType, Ranking
from sweeper.core.outcomes import Outcome, RungScore
from sweeper.core.records import StoredSplit, Trial
from sweeper.core.settings import SearchSettings
from sweeper.errors import SweeperError

ROWS = "rows"


@dataclass(frozen=True)
class Schedule:
    """How many configurations each rung has (at most), and how much resource each gets."""

    sizes: tuple[int, ...]  # configurations per rung: n, ceil(n/factor), …
    factor: int
    min_resources: int | None  # None: as few as leave `sizes[-1]` at the last rung (exhaust)
    floor: int = 1  # the least resource a rung may have (rows: enough to fit every fold)

    @classmethod
    def of(
        cls, configurations: int, search: SearchSettings, maximum: int, floor: int = 1
    ) -> Schedule:
        """scikit-learn's: as many rungs as halving n configurations down to one takes
        (1 + ⌊log_factor n⌋), fewer when `min_resources` leaves no room for them below
        `maximum` (the least of the configurations' full resource) at `factor` times a rung."""
        rungs = 1 + _whole_log(max(configurations, 1), search.factor)
        if search.min_resources is not None:
            rungs = min(rungs, 1 + _whole_log(maximum // search.min_resources, search.factor))
        sizes = [configurations]
        for _ in range(rungs - 1):
            sizes.append(math.ceil(sizes[-1] / search.factor))
        return cls(tuple(sizes), search.factor, search.min_resources, floor)

    @property
    def last(self) -> int:
        return len(self.sizes) - 1

    def amounts(self, maximum: int) -> tuple[int, ...]:
        """Each rung's resource, up to `maximum` (all rows, a model's full budget) at the last:
        `min_resources` times factor^rung, the least being maximum // factor^(rungs - 1)
        unless set, and never below `floor`."""
        least = self.min_resources
        if least is None:
            least = maximum // self.factor**self.last
        least = max(least, min(self.floor, maximum))
        found = [min(least * self.factor**rung, maximum) for rung in range(self.last)]
        return (*found, maximum)


@dataclass
class _Rung:
    """A rung's finished configurations, ranked. Invariants between calls: every configuration
    ranked below position `keep` (the next rung's size) is stopped, and every one above the
    promotion line (`keep` minus unfinished) is promoted or failed; so each new score needs a look
    at a few positions only, not at the whole rung (a rung of 10,000 costs milliseconds)."""

    size: int  # configurations that reach it: as planned, until the rung before is complete
    ranked: list[tuple[float, int]] = field(default_factory=list)  # (loss, index), best first
    scored: set[int] = field(default_factory=set)
    promoted: set[int] = field(default_factory=set)
    stopped: set[int] = field(default_factory=set)
    line: int = 0  # positions above it were looked at for promotion

    def add(self, index: int, loss: float) -> int:
        """Rank a finished configuration (ties: by plan order); its position."""
        self.scored.add(index)
        entry = (loss, index)
        position = bisect.bisect_left(self.ranked, entry)
        self.ranked.insert(position, entry)
        return position


class Halving:
    """One split's successive halving: `start` gives rung 0's trials; `settle` each rung trial's
    outcome, which gives what to train next and the configurations now decided (their final
    outcome: stopped below the last rung, or finished at it, or failed)."""

    def __init__(
        self,
        configurations: Sequence[Trial],
        schedule: Schedule,
        amounts: Mapping[int, tuple[int, ...]],
        resource: str,
        ranking: Ranking,
    ) -> None:
        """`amounts`: each configuration's (by trial index) resource at every rung."""
        self.configurations = {t.index: t for t in configurations}
        self.schedule, self.amounts, self.resource = schedule, amounts, resource
        self.ranking = ranking
        self.rungs = [_Rung(size) for size in schedule.sizes]
        self.reached: dict[int, list[Outcome]] = {i: [] for i in self.configurations}
        self.decided: set[int] = set()

    def describe(self) -> str:
        """ "successive halving of 27 configurations: 27, 9, 3, 1 on 1,259, 3,777, 11,331,
        34,000 rows (factor 3)" """
        sizes = ", ".join(map(str, self.schedule.sizes))
        amounts = set(self.amounts.values())
        if len(amounts) == 1:
            budgets = {str(t.budget) for t in self.configurations.values()}
            unit = "rows" if self.resource == ROWS else "/".join(sorted(budgets))
            on = ", ".join(f"{a:,}" for a in next(iter(amounts))) + f" {unit}"
        else:
            on = "each model's budget from 1/" + f"{self.schedule.factor**self.schedule.last}"
        return (
            f"successive halving of {len(self.configurations)} configurations: {sizes} "
            f"on {on} (factor {self.schedule.factor})"
        )

    def start(self) -> list[Trial]:
        return [self.trial(index, 0) for index in self.configurations]

    def every_trial(self) -> list[Trial]:
        """Every trial the halving may train: each configuration at each rung."""
        rungs = range(self.schedule.last + 1)
        return [self.trial(index, rung) for index in self.configurations for rung in rungs]

    def trial(self, index: int, rung: int) -> Trial:
        """A configuration's trial at a rung: its own model config at the last, with less of the
        resource below it."""
        config = self.configurations[index]
        amount, last = self.amounts[index][rung], rung == self.schedule.last
        if self.resource == ROWS:
            return dataclasses.replace(
                config, rung=rung, rows=None if last else amount, partial=not last
            )
        assert config.budget is not None
        model = {**config.model, config.budget: amount}  # and so its params
        return dataclasses.replace(config, model=model, rung=rung, partial=not last)

    def settle(self, outcome: Outcome) -> tuple[list[Trial], list[Outcome]]:
        """What came of a configuration's trial at its rung: the trials to start now (those
        certain to go on) and the configurations decided now."""
        index, number = outcome.trial.index, outcome.trial.rung or 0
        self.reached[index].append(outcome)
        rung = self.rungs[number]
        scored = outcome.ok and not outcome.stopped  # eval.early_stop's are out, as failures
        position = rung.add(index, self.ranking.loss(outcome.metrics) if scored else math.inf)
        decided = []
        if number == self.schedule.last or not scored:
            rung.stopped.add(index)
            decided.append(self._final(index))
        trials, stopped = self._decide(number, position)
        return trials, decided + stopped

    def _decide(self, number: int, position: int | None) -> tuple[list[Trial], list[Outcome]]:
        """Promote and stop what is certain at this rung now that a configuration is ranked at
        `position`; once the rung is complete, the next rung's size is known (fewer when fewer
        could go on), which may decide more there."""
        trials: list[Trial] = []
        decided: list[Outcome] = []
        while number < self.schedule.last:
            rung, following = self.rungs[number], self.rungs[number + 1]
            keep = self.schedule.sizes[number + 1]
            unfinished = rung.size - len(rung.scored)
            # Stopped: `keep` finished are better. Only the new one, or the one it pushed down
            # to position `keep`, can have crossed that line.
            for at in {position, keep} - {None}:
                assert at is not None
                if at >= keep and at < len(rung.ranked):
                    self._stop(rung, rung.ranked[at][1], decided)
            # Promoted: fewer than `keep` could be better, counting every unfinished one. Only
            # the new one, or those the line passed since the last look, can have crossed it.
            line = min(max(keep - unfinished, 0), len(rung.ranked))
            looked = range(rung.line, line)
            for at in [*looked, *([position] if position is not None and position < line else [])]:
                chosen = rung.ranked[at][1]
                if chosen not in rung.promoted and chosen not in rung.stopped:
                    rung.promoted.add(chosen)
                    trials.append(self.trial(chosen, number + 1))
            rung.line = max(rung.line, line)
            if unfinished > 0 or following.size == len(rung.promoted):
                break
            following.size = len(rung.promoted)  # complete, and fewer went on than planned
            number, position = number + 1, None
        return trials, decided

    def _stop(self, rung: _Rung, index: int, decided: list[Outcome]) -> None:
        if index not in rung.promoted and index not in rung.stopped:
            rung.stopped.add(index)
            decided.append(self._final(index))

    def _final(self, index: int) -> Outcome:
        """A decided configuration as the sweep reports it: its last rung's outcome, with the
        score of every rung it reached; stopped when that rung is not the last."""
        self.decided.add(index)
        reached = self.reached[index]
        top = reached[-1]
        history = []
        for outcome in reached:
            value = self.ranking.value(outcome.metrics) if outcome.ok else None
            if value is not None:
                amount = self.amounts[index][outcome.trial.rung or 0]
                history.append(RungScore(amount, value, outcome.run_id, outcome.reused))
        stopped = top.ok and ((top.trial.rung or 0) < self.schedule.last or top.stopped)
        return dataclasses.replace(top, stopped=stopped, rungs=tuple(history))

    @property
    def done(self) -> bool:
        return len(self.decided) == len(self.configurations)


Recorded = Callable[[Trial], Outcome | None]


def replay(search: Halving, recorded: Recorded) -> tuple[list[Trial], list[Outcome]]:
    """Tell `search` every rung trial it asks for that `recorded` has an outcome of (a run
    found finished or failed), in turn, as if each had just ended: what it waits for that has
    none (what to train next, in rung and plan order), and the configurations it decided. The
    decisions do not depend on the order, so a replay of what was recorded is the run itself."""
    waiting, untold = search.start(), []
    decided: list[Outcome] = []
    while waiting:
        trial = waiting.pop()
        outcome = recorded(trial)
        if outcome is None:
            untold.append(trial)
            continue
        promoted, now = search.settle(outcome)
        waiting.extend(promoted)
        decided.extend(now)
    return sorted(untold, key=lambda t: (t.rung or 0, t.index)), decided


def halving_rows(split: StoredSplit, cv: int) -> tuple[int, int]:
    """search=halving's rows on a split: the fewest training rows a CV fold fits on (a fold
    holds out ⌈n/cv⌉ at most), and the fewest a rung may fit on (scikit-learn's: twice the
    folds, twice again for a classification, whose number of classes the split does not say)."""
    rows = split.report.get("rows_train", 0)
    classes = 2 if split.task == ProblemType.classification else 1
    return rows - math.ceil(rows / cv), 2 * cv * classes


def _whole_log(number: int, base: int) -> int:
    """⌊log_base number⌋ in whole numbers (a float's log puts 3^3 at 2.9999…)."""
    found = 0
    while base ** (found + 1) <= number:
        found += 1
    return found


def halving(
    configurations: Sequence[Trial],
    search: SearchSettings,
    ranking: Ranking,
    rows: int,
    floor: int = 1,
) -> Halving:
    """One split's halving of these configurations: `rows`, the fewest training rows any CV
    fold fits on; `floor`, the fewest rows a rung may fit on (every fold and class fitted).
    Each configuration's full resource: `max_resources`, else all `rows` or its model config's
    own value of its budget parameter."""
    if search.resource == ROWS:
        maxima = {t.index: min(search.max_resources or rows, rows) for t in configurations}
    else:
        check_budgets(configurations)
        maxima = {t.index: search.max_resources or _budget_value(t) for t in configurations}
        floor = 1
    least = min(maxima.values(), default=1)
    schedule = Schedule.of(len(configurations), search, least, floor)
    amounts = {index: schedule.amounts(maximum) for index, maximum in maxima.items()}
    return Halving(configurations, schedule, amounts, search.resource, ranking)


def on_split(
    configurations: Sequence[Trial],
    search: SearchSettings,
    ranking: Ranking,
    split: StoredSplit,
    cv: int,
) -> Halving:
    """The halving of these configurations on a stored split: its training rows, in `cv` folds."""
    rows, floor = halving_rows(split, cv)
    return halving(configurations, search, ranking, rows, floor)


def _budget_value(trial: Trial) -> int:
    value = trial.model.get(trial.budget or "")
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise SweeperError(
            f"model {trial.model_name}: its budget {trial.budget}={value} is not a whole "
            "number of at least 1; give search.max_resources"
        )
    return value


def check_budgets(configurations: Sequence[Trial]) -> None:
    """search.resource=budget: every model config names its budget parameter, and the grid does
    not vary it (the search does)."""
    seen: dict[str, set[str]] = {}
    for trial in configurations:
        if not trial.budget:
            raise SweeperError(
                f"model {trial.model_name} has no `budget:` parameter for "
                "search.resource=budget; use search.resource=rows"
            )
        if trial.budget not in trial.model:
            raise SweeperError(
                f"model {trial.model_name}: its budget {trial.budget} is not one of its settings"
            )
        seen.setdefault(trial.model_name, set()).add(str(trial.model[trial.budget]))
    varied = next((name for name, values in seen.items() if len(values) > 1), None)
    if varied is not None:
        budget = next(t.budget for t in configurations if t.model_name == varied)
        raise SweeperError(
            f"model {varied}: the grid varies {budget}, the budget search=halving gives out; "
            "leave it out of the grid (search.max_resources sets the most)"
        )
