"""What came of a sweep's trials: each trial's outcome, the configurations they make up (trials
that differ only in their seed or split settings), and the sweep's result, with its JSON both
ways.

Plain data like `records`, importable without pandas, scikit-learn or MLflow.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from sweeper.core import evidence, overrides
from sweeper.core.metrics import ProblemType, Ranking
from sweeper.core.records import Plan, Status, StoredSplit, Trial


@dataclass(frozen=True)
class RungScore:
    """A search=halving configuration at one rung it reached: the resource it had, its ranking
    score there, and the run that scored it (`reused`: another sweep's)."""

    amount: int
    score: float
    run_id: str | None = None
    reused: bool = False


@dataclass(frozen=True, slots=True)
class Outcome:
    trial: Trial
    status: Status  # FINISHED, FAILED, NOT_RUN, or RUNNING (`elsewhere`)
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    run_id: str | None = None
    reused: bool = False  # finished by an earlier sweep: its run is that sweep's
    # Each metric's score on each CV fold, in the split's fold order (paired across trials).
    folds: dict[str, tuple[float, ...]] = field(default_factory=dict)
    # Stopped on less (never the best): by search=halving below the last rung, or by
    # eval.early_stop before the last fold; and search=halving's score at every rung reached.
    stopped: bool = False
    rungs: tuple[RungScore, ...] = ()

    @classmethod
    def finished(
        cls,
        trial: Trial,
        metrics: dict[str, float],
        run_id: str,
        folds: dict[str, tuple[float, ...]] | None = None,
        reused: bool = False,
        stopped: bool = False,
    ) -> Outcome:
        """`reused`: an earlier sweep finished it; the run is that sweep's. `stopped`: its CV
        was stopped early (eval.early_stop), its scores over the folds it had."""
        return cls(
            trial,
            Status.FINISHED,
            metrics,
            run_id=run_id,
            reused=reused,
            folds=folds or {},
            stopped=stopped,
        )

    @classmethod
    def failed(cls, trial: Trial, error: BaseException | str, run_id: str | None) -> Outcome:
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        return cls(trial, Status.FAILED, error=text, run_id=run_id)

    @classmethod
    def not_run(cls, trial: Trial, reason: str) -> Outcome:
        return cls(trial, Status.NOT_RUN, error=reason)

    @classmethod
    def elsewhere(cls, trial: Trial, run_id: str) -> Outcome:
        """Not settled: another process holds the trial's claim (tracking.claims), for now."""
        return cls(trial, Status.RUNNING, error="claimed by another run", run_id=run_id)

    @property
    def ok(self) -> bool:
        return self.status == Status.FINISHED

    @property
    def mse(self) -> float:
        """On the test rows."""
        return self.metrics.get("mse", math.inf)

    def line(self, ranking: Ranking | None = None) -> str:
        if not self.ok:
            return f"{self.trial.name}: {self.status} {self.error}"
        reused = " (reused)" if self.reused else ""
        keys = dict.fromkeys([ranking.key, ranking.metric] if ranking else ["mse"])
        shown = " ".join(f"{k}={self.metrics[k]:.6g}" for k in keys if k in self.metrics)
        return f"{self.trial.name}: {shown}{reused}{self.stage}"

    @property
    def shown_status(self) -> str:
        """As tables show it: "stopped" (search=halving, below the last rung), "reused" (an
        earlier sweep's run), else its Status."""
        if self.stopped:
            return "stopped"
        return "reused" if self.reused else self.status.value

    @property
    def rung_reached(self) -> str:
        """search=halving's last rung for it, as tables show it: "1 (72 rows)", "2 (in full)";
        empty for a trial of any other search."""
        if self.trial.rung is None:
            return ""
        return f"{self.trial.rung} ({self._resource()})"

    def _resource(self) -> str:
        """What its halving rung had: "72 rows", "33 max_iter", or "in full" at the last."""
        if not self.trial.partial:
            return "in full"
        if self.trial.rows:
            return f"{self.trial.rows:,} rows"
        return f"{self.trial.model.get(self.trial.budget or '')} {self.trial.budget}"

    @property
    def stage(self) -> str:
        """search=halving's rung, when it is one: " (rung 1: 1,440 rows, stopped)"; how many
        folds eval.early_stop let it have: " (stopped after 2 folds)"."""
        if self.trial.rung is None:
            folds = max((len(v) for v in self.folds.values()), default=0)
            return f" (stopped after {folds} folds)" if self.stopped else ""
        how = ", stopped" if self.stopped else ""
        return f" (rung {self.trial.rung}: {self._resource()}{how})"


# What trials of one configuration may differ in: the seed, and how much is held out for testing.
SPLIT_KEYS = ("seed", "data.test_size")


@dataclass(frozen=True)
class Configuration:
    """Trials that differ only in their seed or split settings (SPLIT_KEYS): one model config,
    scored over several splits. Its mean says more than any one of its trials."""

    name: str  # the trials' name without the split settings: "rf n_estimators=100"
    model_name: str
    outcomes: tuple[Outcome, ...]
    ranking: Ranking

    @classmethod
    def key_and_name(cls, trial: Trial) -> tuple[str, str]:
        settings = sorted(o for o in trial.overrides if overrides.key(o) not in SPLIT_KEYS)
        name = " ".join(t for t in trial.name.split(" ") if overrides.key(t) not in SPLIT_KEYS)
        return json.dumps([trial.model_name, settings]), name

    @property
    def finished(self) -> list[Outcome]:
        """Its trials scored in full (not stopped by search=halving on less)."""
        return [o for o in self.outcomes if o.ok and not o.stopped]

    def mean(self, key: str) -> float | None:
        values = [o.metrics[key] for o in self.finished if key in o.metrics]
        return statistics.fmean(values) if values else None

    def std(self, key: str) -> float | None:
        """The spread over its splits (sample standard deviation): None for fewer than two."""
        values = [o.metrics[key] for o in self.finished if key in o.metrics]
        return statistics.stdev(values) if len(values) > 1 else None

    @property
    def loss(self) -> float:
        mean = self.mean(self.ranking.key)
        return math.inf if mean is None else self.ranking.loss({self.ranking.key: mean})

    @property
    def best(self) -> Outcome | None:
        """Its best trial: the one whose model stands for it."""
        scored = sorted(self.finished, key=lambda o: (self.ranking.loss(o.metrics), o.trial.index))
        return scored[0] if scored else None


def _complexity(model: dict[str, Any], simpler: dict[str, str]) -> tuple[float, ...]:
    """How complex a model config is, by its `simpler` settings in order (lower is simpler):
    a setting that is None (no limit: `max_depth: null`) is the most complex."""
    key = []
    for name, direction in simpler.items():
        value = model.get(name)
        number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
        if number is None:
            key.append(math.inf)
        else:
            key.append(float(number) if direction == "lower" else -float(number))
    return tuple(key)


def _fold_losses(config: Configuration, ranking: Ranking) -> dict[str, list[float]]:
    """A configuration's per-fold losses of the ranking metric, by the split (group) they are
    on: lower is better, as `Ranking.loss`."""
    sign = -1.0 if ranking.maximised else 1.0
    return {
        o.trial.group: [sign * v for v in o.folds[ranking.metric]]
        for o in config.finished
        if o.folds.get(ranking.metric)
    }


@dataclass
class SweepResult:
    plan: Plan
    parent_run_id: str
    outcomes: list[Outcome] = field(default_factory=list)
    splits: dict[str, StoredSplit] = field(default_factory=dict)
    # Bad input (data, split settings, model values) that stopped trials before they ran.
    input_errors: list[str] = field(default_factory=list)
    experiment_id: str = ""  # MLflow's, for links to the sweep's runs
    notes: list[str] = field(default_factory=list)  # what ending the sweep's run reported
    stopped_by: str | None = None  # the outage (core.faults) that stopped the sweep

    @property
    def tracking_uri(self) -> str:
        return self.plan.settings.mlflow.tracking_uri

    @property
    def n_failed(self) -> int:
        return sum(not o.ok for o in self.outcomes)

    @property
    def task(self) -> ProblemType:
        """The data's, once a split is stored (a sweep's groups share one task)."""
        return ProblemType(next((s.task for s in self.splits.values()), ProblemType.regression))

    @property
    def ranking(self) -> Ranking:
        return self.plan.settings.ranking(self.task)

    def ranked(self) -> list[Outcome]:
        """Best first; trials without a score after all scored ones, in plan order."""
        ranking = self.ranking
        return sorted(
            self.outcomes,
            key=lambda o: (
                not o.ok,
                o.stopped,
                -(o.trial.rung or 0),
                ranking.loss(o.metrics),
                o.trial.index,
            ),
        )

    def configurations(self) -> list[Configuration]:
        """Ranked by the mean of the ranking metric over each one's splits, best first."""
        grouped: dict[str, tuple[str, list[Outcome]]] = {}
        for outcome in sorted(self.outcomes, key=lambda o: o.trial.index):
            key, name = Configuration.key_and_name(outcome.trial)
            grouped.setdefault(key, (name, []))[1].append(outcome)
        found = [
            Configuration(name, outcomes[0].trial.model_name, tuple(outcomes), self.ranking)
            for name, outcomes in grouped.values()
        ]
        return sorted(found, key=lambda c: (c.loss, c.outcomes[0].trial.index))

    def versus_best(self) -> dict[str, float]:
        """For each configuration the folds can compare with the best, by name: the p-value of
        "worse than the best" (1.0 for the best itself), by the corrected resampled t-test on
        the per-fold scores they share (module `evidence`). Empty without folds."""
        ranking = self.ranking
        if not ranking.cv:  # nothing to compare on (and 100,000 trials to group for nothing)
            return {}
        ranked = [c for c in self.configurations() if c.finished]
        best = _fold_losses(ranked[0], ranking) if ranked else {}
        if not best:
            return {}
        found = {ranked[0].name: 1.0}
        for config in ranked[1:]:
            differences = [
                theirs - ours
                for split, losses in _fold_losses(config, ranking).items()
                if split in best
                for theirs, ours in zip(losses, best[split], strict=False)
            ]
            if differences:
                found[config.name] = evidence.worse_p_value(
                    differences, evidence.held_out_per_fit(ranking.cv)
                )
        return found

    @property
    def seeded(self) -> bool:
        """Some configuration finished on more than one split (`seed=1,2,3`): configurations,
        not trials, are what is ranked."""
        varied = any(
            overrides.key(line) in SPLIT_KEYS for t in self.plan.trials for line in t.overrides
        )  # else every configuration is one trial: no need to group them to know
        return varied and any(len(c.finished) > 1 for c in self.configurations())

    @property
    def best(self) -> Outcome | None:
        """The best trial; across seeds, the best trial of the best configuration (by mean);
        with `eval.choose=simplest`, the best trial of the simplest configuration within one
        standard error of the best (`simplest`)."""
        chosen = self.simplest() if self.plan.settings.eval.choose == "simplest" else None
        if chosen is not None:
            return chosen.best
        if self.seeded:
            return next((c.best for c in self.configurations() if c.best is not None), None)
        ranked = self.ranked()
        return ranked[0] if ranked and ranked[0].ok and not ranked[0].stopped else None

    def simplest(self) -> Configuration | None:
        """The one-standard-error rule: of the best configuration's model, the simplest
        configuration (its model config's `simpler`) whose mean CV loss is within one standard
        error of the best's (the spread of the best's per-fold scores over folds and seeds,
        over the square root of their number). None without folds to measure it by."""
        ranking = self.ranking
        ranked = [c for c in self.configurations() if c.finished]
        losses = [v for f in _fold_losses(ranked[0], ranking).values() for v in f] if ranked else []
        if len(losses) < 2:
            return None
        top = ranked[0]
        threshold = top.loss + statistics.stdev(losses) / math.sqrt(len(losses))
        near = [c for c in ranked if c.model_name == top.model_name and c.loss <= threshold]
        simpler = top.outcomes[0].trial.simpler
        return min(near, key=lambda c: (_complexity(c.outcomes[0].trial.model, simpler), c.loss))

    def of_best(self) -> SweepResult:
        """The sweep as logging its best model sees it: the best outcome alone, on a plan holding
        only its trial (`best` answers the same on it). What a worker that logs the model is
        sent, instead of 100,000 outcomes; not for counting or tables."""
        best = self.best
        chosen = [best] if best is not None else []
        plan = replace(self.plan, trials=tuple(o.trial for o in chosen))
        return replace(self, plan=plan, outcomes=chosen, notes=list(self.notes))

    def summary_metrics(self) -> dict[str, float]:
        metrics = {
            "n_trials": float(len(self.plan.trials)),
            "n_failed": float(self.n_failed),
            "n_reused": float(sum(o.reused for o in self.outcomes)),
        }
        best = self.best
        if best is not None:  # its test scores: the honest estimate; and what it was chosen by
            for key in dict.fromkeys([self.ranking.key, *self.ranking.metrics]):
                if key in best.metrics:
                    metrics[f"best_{key}"] = best.metrics[key]
        return metrics

    def to_json(self) -> str:
        rows: list[dict[str, Any]] = [
            {
                "index": o.trial.index,
                "name": o.trial.name,
                "model": o.trial.model_name,
                "status": o.status.value,
                "reused": o.reused,
                "metrics": o.metrics,
                "folds": o.folds,
                "error": o.error,
                "run_id": o.run_id,
                "rung": o.trial.rung,
                "rows": o.trial.rows,
                "stopped": o.stopped,
                "rungs": [asdict(r) for r in o.rungs],
            }
            for o in self.ranked()
        ]
        record = {
            "sweep_id": self.plan.sweep_id,
            "parent_run_id": self.parent_run_id,
            "splits": {k: v.url for k, v in self.splits.items()},
            "task": self.task.value,
            "trials": rows,
        }
        # Compact: indenting takes Python's slow encoder (~4 s at 100,000 trials), not C's.
        return json.dumps(record, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes, plan: Plan) -> SweepResult:
        """A recorded result, its rows matched to `plan`'s trials by index (rows for trials the
        plan lacks are left out). Splits come back with their URLs only."""
        record = json.loads(text)
        trials = {t.index: t for t in plan.trials}
        result = cls(plan, str(record["parent_run_id"]))
        for row in record["trials"]:
            trial = trials.get(int(row["index"]))
            if trial is None:
                continue
            if row.get("rung") is not None:  # search=halving: the rung it ended at
                rung, rows = int(row["rung"]), row.get("rows")
                partial = bool(row.get("stopped"))
                trial = replace(trial, rung=rung, rows=rows, partial=partial)
            result.outcomes.append(
                Outcome(
                    trial,
                    Status(row["status"]),
                    dict(row.get("metrics") or {}),
                    row.get("error"),
                    row.get("run_id"),
                    bool(row.get("reused")),
                    {m: tuple(v) for m, v in (row.get("folds") or {}).items()},
                    bool(row.get("stopped")),
                    tuple(RungScore(**r) for r in row.get("rungs") or ()),
                )
            )
        result.splits = {
            group: StoredSplit(
                url,
                key=url.rsplit("/", 1)[-1],
                reused=True,
                task=record.get("task", ProblemType.regression),
            )
            for group, url in (record.get("splits") or {}).items()
        }
        return result
