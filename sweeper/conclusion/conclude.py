"""How a sweep's parent run ends: the results table and plots as artifacts, the best trial's
model logged (and registered when asked and better), summary metrics, the final status.

The same parts end a local sweep (in its workers, the tables written in the sweeping process)
and an Argo sweep (its summary pod). What goes wrong while making the extras is reported as a
note; the run still ends with its status.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from sweeper.core import provenance
from sweeper.core.faults import Fault
from sweeper.core.metrics import ProblemType
from sweeper.core.records import Plan, Status
from sweeper.trial import kept

if TYPE_CHECKING:
    from sweeper.conclusion.best_model import LoggedModel
    from sweeper.core.outcomes import Outcome, SweepResult
    from sweeper.tracking.tracker import Tracker

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class SweepEnd:
    experiment_id: str
    notes: tuple[str, ...] = ()  # lines for the person who started the sweep


def conclude_sweep(
    tracker: Tracker,
    result: SweepResult,
    status: Status,
    register_best: str | None = None,
    handed_over: Path | None = None,
) -> SweepEnd:
    """Everything, one part after the other (a local sweep runs the two extras in parallel).
    `handed_over`: where a local sweep's workers left their kept models (trial.kept)."""
    notes: list[str] = []
    if status != Status.KILLED:  # an interrupted sweep ends at once
        notes += log_results(tracker, result)
        notes += log_best(tracker, result, register_best, handed_over=handed_over)
    metrics = result.summary_metrics()
    return end_sweep(tracker, result.parent_run_id, result.plan, metrics, status, notes)


def load_libraries() -> None:
    """Import what concluding loads (matplotlib, MLflow's scikit-learn flavour, skops; ~1 s):
    a local worker left without trials does it while the last ones run."""
    import matplotlib

    matplotlib.use("Agg")  # files only: pods and CI have no display
    import matplotlib.pyplot
    import mlflow.models
    import mlflow.sklearn  # noqa: F401
    import skops.io  # noqa: F401

    import sweeper.conclusion.artifacts
    import sweeper.conclusion.best_model  # noqa: F401


def load_table_libraries() -> None:
    """Import what `write_results` loads (pandas, plotly, matplotlib; ~0.5 s): the sweeping
    process does it in a thread while its last trials run."""
    import matplotlib

    matplotlib.use("Agg")  # files only
    import matplotlib.pyplot
    import plotly.graph_objects  # noqa: F401

    import sweeper.conclusion.artifacts
    import sweeper.conclusion.report_page  # noqa: F401


def end_sweep(
    tracker: Tracker,
    parent_run_id: str,
    plan: Plan,
    metrics: Mapping[str, float],
    status: Status,
    notes: Sequence[str] = (),
) -> SweepEnd:
    """The sweep's run ended with its summary `metrics` (SweepResult.summary_metrics). `plan`:
    the sweep's, its trials not needed (a local sweep sends it without them)."""
    if status != Status.FINISHED:
        tracker.end_running_trials(parent_run_id)
    tracker.finish_sweep(parent_run_id, dict(metrics), status)
    kept.discard(plan.settings.storage.root, plan.sweep_id)  # the winner's is logged, or never
    return SweepEnd(tracker.experiment_id, tuple(notes))


def log_best_early(
    tracker: Tracker, result: SweepResult, handed_over: Path | None = None
) -> str | None:
    """The model of the best trial so far, logged while the last trials run (by a local worker
    left without trials), so that the end finds it logged unless a later trial wins; the run it
    was logged on. A failure here is left for the end to meet and report."""
    best = result.best
    split = result.splits.get(best.trial.group) if best else None
    if best is None or split is None or best.reused:
        return None
    try:
        _log_model(tracker, result, best, split.url, handed_over)
    except Exception:
        log.debug("Logging the best model early failed; the end tries again", exc_info=True)
        return None
    return best.run_id


def log_best(
    tracker: Tracker,
    result: SweepResult,
    register_best: str | None,
    early: str | None = None,
    handed_over: Path | None = None,
) -> list[str]:
    """The best trial's model on its run (and in the registry when asked and better). `early`:
    the run a model was logged on while trials still ran; withdrawn if a later trial won."""
    from sweeper.conclusion.best_model import MODEL_TAG, register_if_better

    notes: list[str] = []
    best = result.best
    split = result.splits.get(best.trial.group) if best else None
    if early is not None and (best is None or early != best.run_id):
        _attempt(
            notes,
            "the withdrawal of an earlier best model",
            lambda: tracker.withdraw_model(early, MODEL_TAG),
        )
    if best is None or split is None:
        return notes
    model = _attempt(
        notes, "the best model", lambda: _log_model(tracker, result, best, split.url, handed_over)
    )
    if model is None:
        return notes
    tracker.set_tag(result.parent_run_id, "best_model_uri", model.uri)
    if result.task == ProblemType.classification:
        _attempt(
            notes,
            "the confusion matrix",
            lambda: _log_label_report(tracker, result, model.uri, best.trial.name, split.url),
        )
    if not register_best:
        return notes
    trust = result.plan.settings.trust
    decision = _attempt(
        notes,
        f"registered model {register_best}",
        lambda: register_if_better(
            tracker,
            register_best,
            model,
            best,
            split.url,
            result.plan.sweep_id,
            result.ranking,
            trust,
            result.plan.settings.mlflow,
            provenance.of(tracker.client.get_run(result.parent_run_id).data.tags),
        ),
    )
    if decision:
        notes.append(decision)
        tracker.set_tag(result.parent_run_id, "registry", decision)
    return notes


def _log_model(
    tracker: Tracker, result: SweepResult, best: Outcome, split_url: str, handed_over: Path | None
) -> LoggedModel:
    from sweeper.conclusion.best_model import log_best_model

    root, sweep_id = result.plan.settings.storage.root, result.plan.sweep_id
    fitted = kept.load(root, sweep_id, str(best.run_id), handed_over)
    return log_best_model(tracker, best, split_url, fitted, result.plan.settings.trust.modules)


def log_results(tracker: Tracker, result: SweepResult) -> list[str]:
    """The results tables, the report and the plots on the sweep's run (and search=halving's
    rungs on their runs): written, then logged."""
    with tempfile.TemporaryDirectory(prefix="sweeper-results-") as folder:
        return write_results(result, Path(folder)) + log_written(tracker, result, Path(folder))


def write_results(result: SweepResult, folder: Path) -> list[str]:
    """The results tables, the report and the plots as files in `folder` (its `results/` and
    `plots/`), with no tracking store: a local sweep writes them where its outcomes are, in the
    sweeping process, instead of sending a worker a copy of 100,000 of them. A report that
    cannot be made is a note, and the rest is written all the same."""
    from sweeper.conclusion.artifacts import results_table, write_plots, write_tables
    from sweeper.conclusion.report_page import write_report

    notes: list[str] = []

    def write() -> None:
        tables, plots = folder / "results", folder / "plots"
        tables.mkdir()
        plots.mkdir()
        table = results_table(result)
        write_tables(result, tables, table)
        _attempt(notes, "the report", lambda: write_report(result, table, tables / "report.html"))
        write_plots(result, plots)

    _attempt(notes, "the results table and plots", write)
    return notes


def log_written(tracker: Tracker, result: SweepResult, folder: Path) -> list[str]:
    """What write_results wrote in `folder`, logged on the sweep's run; search=halving's rungs
    on their runs. `result` needs only its parent run and the outcomes that have rungs."""
    notes: list[str] = []

    def log_folder() -> None:
        for name in ("results", "plots"):
            written = folder / name
            if written.is_dir() and any(written.iterdir()):
                tracker.log_artifacts(result.parent_run_id, written, name)

    _attempt(notes, "the results table and plots", log_folder)
    if any(o.rungs for o in result.outcomes):
        _attempt(notes, "the halving's rungs", lambda: _log_rungs(tracker, result))
    return notes


# search=halving's tags on a configuration's run: the last rung it reached, and whether it
# was stopped there (scored on less than the full resource: never the best).
RUNG_TAG, STOPPED_TAG = "halving.rung", "halving.stopped"
RUNG_METRIC = "rung_{}"  # its ranking score at every rung reached, step = the resource


def _log_rungs(tracker: Tracker, result: SweepResult) -> None:
    """Each configuration as one run of this sweep: the run of the last rung it reached here,
    holding its score at every rung (`rung_<key>`, step = resource), with the runs of its lower
    rungs nested under it. Another sweep's runs (a rung found finished) are left as they are."""
    key = RUNG_METRIC.format(result.ranking.key)
    for outcome in result.outcomes:
        own = [r.run_id for r in outcome.rungs if r.run_id and not r.reused]
        if outcome.run_id and not outcome.reused and outcome.run_id not in own:
            own.append(outcome.run_id)  # a failed last rung: it has no score, it is the run
        if not own:
            continue
        holder = own[-1]
        scores = {key: [(r.amount, r.score) for r in outcome.rungs]}
        tags = {RUNG_TAG: str(outcome.trial.rung), STOPPED_TAG: str(outcome.stopped).lower()}
        tracker.log_rungs(holder, scores, tags, own[:-1])


def _log_label_report(
    tracker: Tracker, result: SweepResult, model_uri: str, trial: str, split_url: str
) -> None:
    from sweeper.conclusion.artifacts import write_label_report
    from sweeper.conclusion.registered import load_model
    from sweeper.trial.fitting import read_raw_test

    trust = result.plan.settings.trust  # a reused trial's model was logged by another sweep
    shown = f"the model of {trial}"
    loaded = load_model(model_uri, shown, tracker.tracking_uri, trust.modules, trust.pickled_models)
    model = loaded.get_raw_model()
    X_test, y_test = read_raw_test(split_url)
    with tempfile.TemporaryDirectory(prefix="sweeper-labels-") as folder:
        tables, plots = Path(folder, "results"), Path(folder, "plots")
        tables.mkdir()
        plots.mkdir()
        write_label_report(model, X_test, y_test, trial, tables, plots)
        tracker.log_artifacts(result.parent_run_id, tables, "results")
        tracker.log_artifacts(result.parent_run_id, plots, "plots")


def _attempt(notes: list[str], what: str, make: Callable[[], T]) -> T | None:
    """An extra of the sweep's end: a failure is a note, not the sweep's end; a fault (an outage,
    a full disk: core.faults) stops it, to be done by the next command."""
    try:
        return make()
    except Fault:
        raise
    except Exception as err:
        log.warning("Could not log %s", what, exc_info=True)
        notes.append(f"Could not log {what}: {type(err).__name__}: {err}")
        return None
