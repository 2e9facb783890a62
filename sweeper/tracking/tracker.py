"""MLflow bookkeeping through MLflow's client: a parent run per sweep, a child run per trial."""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from sweeper.core import storage
from sweeper.core.faults import disk_full, retrying
from sweeper.core.processes import lives, started
from sweeper.core.records import (
    Status,
    StoredSplit,
    TrialRecord,
    TrialScore,
    now_ms,
    stopped_key,
)
from sweeper.errors import SweeperError
from sweeper.safe_text import redact, redact_text
from sweeper.tracking import by_key
from sweeper.tracking.by_key import KeyIndex, indexable
from sweeper.tracking.store import (
    RetryingClient,
    problem,
    sqlite_creation_lock,
    unlocked,
    use_sqlite_wal,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run
    from mlflow.entities.model_registry import ModelVersion

log = logging.getLogger(__name__)

PARENT_TAG = "mlflow.parentRunId"
# Unless the user set them: a tracking server that is down fails in seconds, not minutes (MLflow's
# own default is 7 retries with long backoff); ending a run prints no link (a sweep prints its
# own summary; a step's stdout stays machine-readable); no usage telemetry leaves the sweep
# (trials run in CI, pods and offline clusters, and each logging call paid for it).
_MLFLOW_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",  # core.faults retries, for a bounded time
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
}
# MLflow refuses longer param values and tag values.
_MAX_PARAM = 6000
_MAX_TAG = 5000
# Runs one search asks for; _pages follows the pages. A tracking server answers a page of 1,000
# full runs in seconds (10 s measured against a server on a 100,000-run SQLite store), and one of
# 50,000 (MLflow's most) not within a request's timeout.
_MANY = 1_000
# A trial's score on each CV fold: metric steps `fold_<metric>` for MLflow's charts, and this
# tag (JSON, metric → scores) for reading them back with the run, without a call per run.
FOLDS_TAG = by_key.FOLDS_TAG
FOLD_METRIC = "fold_{}"

FoldScores = dict[str, tuple[float, ...]]


_MAX_DIGEST = 36  # MLflow's limit on a dataset's digest


def _source_type(source: str) -> str:
    """MLflow's name for where a dataset was read from."""
    scheme = source.partition("://")[0] if "://" in source else ""
    if scheme in ("http", "https"):
        return "http"
    if scheme:
        return scheme  # s3, gs, …
    return "code" if source.startswith("sklearn.") else "local"


class FinishedRun(NamedTuple):
    """A trial's run as some sweep finished it: what reusing it needs."""

    run_id: str
    metrics: dict[str, float]
    folds: FoldScores
    stopped: bool = False  # eval.early_stop stopped its CV (its key is records.stopped_key)


# A trial eval.early_stop stopped: after how many folds (its run's key is then stopped_key's).
STOPPED_AFTER_TAG = by_key.STOPPED_TAG


def fold_scores(run: Run) -> FoldScores:
    """A trial run's per-fold scores (FOLDS_TAG), read as data: anything but a mapping of
    metric names to lists of numbers is ignored (as a run from before they were kept)."""
    return folds_of(run.data.tags.get(FOLDS_TAG))


def folds_of(text: str | None) -> FoldScores:
    """Per-fold scores from a FOLDS_TAG's text (see fold_scores)."""
    try:
        found = json.loads(text or "{}")
        return {
            str(metric): tuple(float(v) for v in values)
            for metric, values in found.items()
            if isinstance(values, list) and all(isinstance(v, int | float) for v in values)
        }
    except (ValueError, TypeError, AttributeError):
        return {}


class Tracker:
    """Writes one sweep's runs into one experiment of one tracking server (or SQLite file)."""

    def __init__(self, tracking_uri: str, experiment: str, create: bool = True) -> None:
        for name, value in _MLFLOW_DEFAULTS.items():
            os.environ.setdefault(name, value)
        # It logs each database error with a traceback before raising it; we say it in a line.
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
        if tracking_uri.startswith("sqlite:"):
            use_sqlite_wal()

        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        self.tracking_uri = tracking_uri
        # A SQL store sweeper opens itself: trials are looked up by key through an index.
        self.by_key = KeyIndex(tracking_uri) if indexable(tracking_uri) else None
        try:
            with sqlite_creation_lock(tracking_uri):
                self.client = MlflowClient(tracking_uri)  # creates a new store's tables
                self.experiment_id = self._experiment_id(experiment, create)
                if self.by_key is not None and create:
                    self.by_key.ensure()
        except Exception as err:
            where = str(storage.sqlite_file(tracking_uri) or tracking_uri)
            full = disk_full(err, where, "the tracking store")
            if full is not None:  # SQLite says so before MLflow wraps it, or after
                raise full from None
            if not isinstance(err, MlflowException):
                raise
            raise SweeperError(f"MLflow at {redact(tracking_uri)} {problem(err)}") from None
        # A store that answered at the start is waited for through a fault later on.
        self.shown = f"MLflow at {redact(tracking_uri) or tracking_uri}"
        self.client = cast("MlflowClient", RetryingClient(self.client, tracking_uri, self.shown))

    def _experiment_id(self, name: str, create: bool) -> str:
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(name)
        if found is not None and found.lifecycle_stage == "deleted":  # MLflow keeps its name
            raise SweeperError(
                f"MLflow at {redact(self.tracking_uri)}: experiment '{name}' (id "
                f"{found.experiment_id}) is deleted: restore it (mlflow experiments restore) or "
                "set mlflow.experiment to another name"
            )
        if found is not None:
            return found.experiment_id
        if not create:
            raise SweeperError(f"MLflow at {redact(self.tracking_uri)} has no experiment '{name}'")
        try:
            return unlocked(
                self.client.create_experiment, name, artifact_location=self._artifact_root()
            )
        except MlflowException:  # another sweep created it first
            found = self.client.get_experiment_by_name(name)
            if found is None:
                raise
            return found.experiment_id

    def _artifact_root(self) -> str | None:
        """A SQLite store keeps its artifacts beside the database file, where `mlflow ui` finds
        them whatever folder it is started from (MLflow's own default is relative to the cwd of
        the process that created the experiment). Servers choose their own."""
        database = storage.sqlite_file(self.tracking_uri)
        return None if database is None else (database.parent / "mlartifacts").as_uri()

    def start_sweep(
        self,
        sweep_id: str,
        params: Mapping[str, Any],
        pid: int | None = None,
        inputs: Sequence[StoredSplit] = (),
        tags: Mapping[str, str] | None = None,
    ) -> str:
        """The sweep's run; `tags` besides its own (where it came from: core.provenance)."""
        pid = pid or os.getpid()  # the process that owns the run: orphaned when it is gone
        tags = {
            **(tags or {}),
            "sweep_id": sweep_id,
            "host": socket.gethostname(),
            "pid": str(pid),
            "pid_started": started(pid),
        }
        run = unlocked(
            self.client.create_run, self.experiment_id, run_name=f"sweep {sweep_id}", tags=tags
        )
        run_id: str = run.info.run_id
        self._log(run_id, params=params)
        self.log_inputs(run_id, inputs)
        return run_id

    def log_inputs(self, run_id: str, splits: Sequence[StoredSplit]) -> None:
        """The data the splits were made from, as the run's dataset inputs (MLflow's lineage:
        the UI's Datasets column), once per distinct data: its name, its bytes' SHA-256 as the
        digest, its source without credentials, and its columns' types. Logging one again is
        harmless (MLflow links a run to a dataset once)."""
        from mlflow.entities import Dataset, DatasetInput, InputTag
        from mlflow.exceptions import MlflowException

        found = {}
        for split in splits:
            if split.content and split.name:
                found[split.name, split.content] = split
        datasets = [
            DatasetInput(
                Dataset(
                    name=split.name,
                    digest=split.content[:_MAX_DIGEST],
                    source_type=_source_type(split.source),
                    source=json.dumps({"uri": redact(split.source)}),
                    schema=json.dumps(
                        {
                            "mlflow_colspec": [
                                {"type": kind, "name": column, "required": True}
                                for column, kind in split.schema.items()
                            ]
                        }
                    ),
                ),
                tags=[InputTag("mlflow.data.context", "training")],
            )
            for split in found.values()
        ]
        if not datasets:
            return
        try:
            unlocked(self.client.log_inputs, run_id, datasets=datasets)
        except MlflowException as err:  # lineage is worth a line, not the sweep (an old server)
            log.warning("The sweep's data is not recorded as its run's input: %s", problem(err))

    def log_trial(
        self,
        parent_run_id: str,
        sweep_id: str,
        record: TrialRecord,
        score: TrialScore | None = None,
        error: BaseException | None = None,
    ) -> str:
        """A finished (or failed) trial as a child run, in three calls: create, one batch, end."""
        started = score.started_ms if score else now_ms()
        run_id = self.open_trial(parent_run_id, sweep_id, record, started)
        self.close_trial(run_id, record, score, error)
        return run_id

    def open_trial(
        self,
        parent_run_id: str,
        sweep_id: str,
        record: TrialRecord,
        started_ms: int,
        claim: Mapping[str, str] | None = None,
    ) -> str:
        """A trial's child run, RUNNING: `claim` tags say who holds it (see tracking.claims)."""
        tags = {PARENT_TAG: parent_run_id, "sweep_id": sweep_id, **(claim or {})}
        optional = {
            "trial_index": record.index,
            "trial_key": record.key,
            "split_key": record.split_key,
        }
        tags.update({k: str(v) for k, v in optional.items() if v is not None})
        run = unlocked(
            self.client.create_run,
            self.experiment_id,
            start_time=started_ms,
            tags=tags,
            run_name=record.name,
        )
        run_id: str = run.info.run_id
        return run_id

    def close_trial(
        self,
        run_id: str,
        record: TrialRecord,
        score: TrialScore | None = None,
        error: BaseException | None = None,
    ) -> None:
        """The trial's params and metrics in one batch, then its end: FINISHED, or FAILED."""
        started = score.started_ms if score else now_ms()
        metrics = score.metrics if score else {}
        folds = score.folds if score else {}
        tags = {}
        if error is not None:
            tags = {"error.type": type(error).__name__, "error.message": str(error)[:_MAX_TAG]}
        if score is not None and score.stopped and record.key is not None:
            # Its own identity: the trial's key stays free for a sweep that trains it in full.
            tags["trial_key"] = stopped_key(record.key)
            tags[STOPPED_AFTER_TAG] = str(max((len(v) for v in folds.values()), default=0))
        text = json.dumps({m: list(v) for m, v in folds.items()}, separators=(",", ":"))
        if folds and len(text) <= _MAX_TAG:  # (more folds than a tag holds: steps only)
            tags[FOLDS_TAG] = text
        self._log(
            run_id,
            params=record.params,
            metrics=metrics,
            step_time=started,
            tags=tags,
            series={FOLD_METRIC.format(m): v for m, v in folds.items()},
        )
        final = Status.FINISHED if error is None else Status.FAILED
        ended = score.ended_ms if score else now_ms()
        unlocked(self.client.set_terminated, run_id, final.value, end_time=ended)

    def _every(self, wanted: str) -> list[Run]:
        """Every run of the experiment that MLflow's filter `wanted` finds."""
        return [run for page in self._pages(wanted) for run in page]

    def _pages(self, wanted: str) -> Iterator[list[Run]]:
        """The runs MLflow's filter `wanted` finds, a page at a time: each search asks for _MANY
        runs, and MLflow says with a page token that there are more. A reader that
        keeps a little of each run holds one page of full runs, not all of them."""
        token = None
        while True:
            page = self.client.search_runs(
                [self.experiment_id], filter_string=wanted, max_results=_MANY, page_token=token
            )
            yield list(page)
            token = getattr(page, "token", None)
            if not token:
                return

    def trial_claims(self, trial_key: str, parent_run_id: str | None = None) -> list[Run]:
        """Every run of the experiment for this trial key (one sweep's when `parent_run_id`)."""
        wanted = f"tags.trial_key = '{trial_key}'"
        if parent_run_id is not None:
            wanted += f" and tags.`{PARENT_TAG}` = '{parent_run_id}'"
        return self._every(wanted)

    def drop_run(self, run_id: str) -> None:
        """A claim given up: deleted, so no search (nor the MLflow UI) lists it."""
        unlocked(self.client.delete_run, run_id)

    def finished_trials(self, split_key: str, keys: Collection[str]) -> dict[str, FinishedRun]:
        """The trials of these keys (on this split) that some sweep of the experiment finished,
        by trial key. On a SQL store through the trial-key index (tracking.by_key): its cost
        is the keys', whatever else the experiment holds; through a server, every finished run
        of the split is read (MLflow's REST API cannot ask for many tag values at once)."""
        if not keys:
            return {}
        if self.by_key is not None:
            return {
                key: FinishedRun(run.run_id, run.metrics, folds_of(run.folds_text), run.stopped)
                for key, run in retrying(
                    self.shown, self.by_key.finished, self.experiment_id, keys
                ).items()
            }
        wanted = set(keys)
        pages = self._pages(
            f"tags.split_key = '{split_key}' and attributes.status = '{Status.FINISHED}'"
        )
        return {
            r.data.tags["trial_key"]: FinishedRun(
                r.info.run_id, r.data.metrics, fold_scores(r), STOPPED_AFTER_TAG in r.data.tags
            )
            for page in pages
            for r in page
            if r.data.tags.get("trial_key") in wanted
        }

    def end_orphaned_sweeps(self) -> list[str]:
        """Sweep runs left RUNNING by a process of this machine that no longer exists (SIGKILL,
        power loss) are marked KILLED, with any trial run of theirs caught mid-write; the ids of
        those sweep runs."""
        running = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"attributes.status = '{Status.RUNNING}' and tags.sweep_id != ''",
            max_results=5_000,
        )
        ended = []
        for run in running:
            tags = run.data.tags
            if PARENT_TAG in tags or tags.get("host") != socket.gethostname():
                continue
            pid = int(tags.get("pid", "0"))
            if not lives(pid, tags.get("pid_started", "")):
                self.end_running_trials(run.info.run_id)
                unlocked(self.client.set_terminated, run.info.run_id, Status.KILLED.value)
                ended.append(run.info.run_id)
        return ended

    def end_running_trials(self, parent_run_id: str) -> None:
        """Trial runs of this sweep still RUNNING (their process was stopped mid-write): KILLED."""
        for run in self.trial_runs(parent_run_id, f"attributes.status = '{Status.RUNNING}'"):
            unlocked(self.client.set_terminated, run.info.run_id, Status.KILLED.value)

    def finish_sweep(self, run_id: str, metrics: Mapping[str, float], status: Status) -> None:
        self._log(run_id, metrics=metrics)
        unlocked(self.client.set_terminated, run_id, status.value)

    def trial_runs(self, parent_run_id: str, where: str = "") -> list[Run]:
        """The child runs of a sweep run (`where`: more of MLflow's filter, e.g. a status)."""
        wanted = f"tags.`{PARENT_TAG}` = '{parent_run_id}'" + (f" and {where}" if where else "")
        return self._every(wanted)

    def sweep_runs(self, sweep_id: str | None = None, limit: int = 200) -> list[Run]:
        """Sweep (parent) runs of the experiment, newest first; one sweep's when `sweep_id`."""
        wanted = f" and tags.sweep_id = '{sweep_id}'" if sweep_id else ""
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"attributes.run_name LIKE 'sweep %'{wanted}",
            order_by=["attributes.start_time DESC"],
            max_results=limit,
        )
        return [r for r in runs if PARENT_TAG not in r.data.tags]

    def get_run(self, run_id: str) -> Run:
        return self.client.get_run(run_id)

    def log_rungs(
        self,
        run_id: str,
        scores: Mapping[str, Sequence[tuple[int, float]]],
        tags: Mapping[str, str],
        below: Sequence[str] = (),
    ) -> None:
        """search=halving's record of one configuration on the run of the last rung it reached:
        each metric's score at every rung as metric steps (step = the rung's resource), and its
        tags; the runs of its rungs `below` are nested under it."""
        from mlflow.entities import Metric, RunTag

        timestamp = now_ms()
        values = [
            Metric(key, float(value), timestamp, amount)
            for key, steps in scores.items()
            for amount, value in steps
        ]
        unlocked(
            self.client.log_batch,
            run_id,
            metrics=values,
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
        for lower in below:
            self.set_tag(lower, PARENT_TAG, run_id)

    def set_tag(self, run_id: str, key: str, value: str) -> None:
        unlocked(self.client.set_tag, run_id, key, redact_text(value)[:_MAX_TAG])

    def withdraw_model(self, run_id: str, key: str) -> None:
        """Remove the model a run's tag `key` names (a `models:/m-…` URI), and the tag."""
        uri = self.get_run(run_id).data.tags.get(key, "")
        if uri.startswith("models:/m-"):
            unlocked(self.client.delete_logged_model, uri.removeprefix("models:/"))
        unlocked(self.client.delete_tag, run_id, key)

    def set_terminated(self, run_id: str, status: Status, end_time: int | None = None) -> None:
        unlocked(self.client.set_terminated, run_id, status.value, end_time=end_time)

    def log_artifacts(self, run_id: str, folder: Path, artifact_path: str) -> None:
        self.client.log_artifacts(run_id, str(folder), artifact_path)

    def model_versions(self, name: str) -> list[ModelVersion]:
        return list(self.client.search_model_versions(f"name = '{name}'"))

    def download_artifact(self, run_id: str, path: str, into: Path) -> Path:
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # small files
        return Path(self.client.download_artifacts(run_id, path, str(into)))

    def _log(
        self,
        run_id: str,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        step_time: int | None = None,
        tags: Mapping[str, str] | None = None,
        series: Mapping[str, Sequence[float]] | None = None,
    ) -> None:
        """One batch; `series`: metrics with a value per step (a trial's per-fold scores)."""
        from mlflow.entities import Metric, Param, RunTag

        timestamp = step_time or now_ms()
        values = [Metric(k, float(v), timestamp, 0) for k, v in (metrics or {}).items()]
        for key, steps in (series or {}).items():
            values += [Metric(key, float(v), timestamp, step) for step, v in enumerate(steps)]
        unlocked(
            self.client.log_batch,
            run_id,
            metrics=values,
            params=[Param(k, redact_text(str(v))[:_MAX_PARAM]) for k, v in (params or {}).items()],
            tags=[RunTag(k, redact_text(v)[:_MAX_TAG]) for k, v in (tags or {}).items()],
        )
