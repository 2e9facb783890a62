"""MLflow bookkeeping through MLflow's client: a parent run per sweep, a child run per trial."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sweeper.errors import SweeperError
from sweeper.storage import redact

if TYPE_CHECKING:
    from steps.records import TrialScore
    from sweeper.plan import Trial

T = TypeVar("T")
PARENT_TAG = "mlflow.parentRunId"
# Unless the user set them: a tracking server that is down fails in seconds, not minutes (MLflow's
# own default is 7 retries with long backoff); ending a run prints no link (a sweep prints its
# own summary; a step's stdout stays machine-readable); no usage telemetry leaves the sweep
# (trials run in CI, pods and offline clusters, and each logging call paid for it).
_MLFLOW_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
}
# MLflow refuses longer param values and tag values.
_MAX_PARAM = 6000
_MAX_TAG = 5000


@dataclass(frozen=True)
class TrialRecord:
    """What a trial's child run is called and which params describe it."""

    name: str
    params: Mapping[str, str] = field(default_factory=dict)
    index: int | None = None  # the trial's place in its plan
    key: str | None = None  # sweeper.plan.trial_key: what makes two trials the same
    split_key: str | None = None

    @classmethod
    def of(cls, trial: Trial) -> TrialRecord:
        return cls(name=trial.name, params=trial.params, index=trial.index)


class Tracker:
    """Writes one sweep's runs into one experiment of one tracking server (or SQLite file)."""

    def __init__(self, tracking_uri: str, experiment: str, create: bool = True) -> None:
        for name, value in _MLFLOW_DEFAULTS.items():
            os.environ.setdefault(name, value)
        if tracking_uri.startswith("sqlite:"):
            _use_sqlite_wal()

        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        self.tracking_uri = tracking_uri
        try:
            with _sqlite_creation_lock(tracking_uri):
                self.client = MlflowClient(tracking_uri)  # creates a new store's tables
                self.experiment_id = self._experiment_id(experiment, create)
        except MlflowException as err:
            raise SweeperError(f"MLflow at {redact(tracking_uri)} {_problem(err)}") from None

    def _experiment_id(self, name: str, create: bool) -> str:
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        if not create:
            raise SweeperError(f"MLflow at {redact(self.tracking_uri)} has no experiment '{name}'")
        try:
            return self.client.create_experiment(name, artifact_location=self._artifact_root())
        except MlflowException:  # another sweep created it first
            found = self.client.get_experiment_by_name(name)
            if found is None:
                raise
            return found.experiment_id

    def _artifact_root(self) -> str | None:
        """A SQLite store keeps its artifacts beside the database file, where `mlflow ui` finds
        them whatever folder it is started from (MLflow's own default is relative to the cwd of
        the process that created the experiment). Servers choose their own."""
        if not self.tracking_uri.startswith("sqlite:///"):
            return None
        database = Path(self.tracking_uri.removeprefix("sqlite:///")).resolve()
        return (database.parent / "mlartifacts").as_uri()

    def start_sweep(self, sweep_id: str, params: Mapping[str, Any], pid: int | None = None) -> str:
        pid = pid or os.getpid()  # the process that owns the run: orphaned when it is gone
        tags = {"sweep_id": sweep_id, "host": socket.gethostname(), "pid": str(pid)}
        run = self.client.create_run(self.experiment_id, run_name=f"sweep {sweep_id}", tags=tags)
        self._log(run.info.run_id, params=params)
        return run.info.run_id

    def log_trial(
        self,
        parent_run_id: str,
        sweep_id: str,
        record: TrialRecord,
        score: TrialScore | None = None,
        error: BaseException | None = None,
    ) -> str:
        """A finished (or failed) trial as a child run, in three calls: create, one batch, end."""
        tags = {PARENT_TAG: parent_run_id, "sweep_id": sweep_id}
        optional = {
            "trial_index": record.index,
            "trial_key": record.key,
            "split_key": record.split_key,
        }
        tags.update({k: str(v) for k, v in optional.items() if v is not None})
        if error is not None:
            tags["error.type"] = type(error).__name__
            tags["error.message"] = str(error)[:_MAX_TAG]
        started = score.started_ms if score else _now_ms()
        run = _unlocked(
            self.client.create_run,
            self.experiment_id, start_time=started, tags=tags, run_name=record.name,
        )  # fmt: skip
        metrics = score.metrics if score else {}
        self._log(run.info.run_id, params=record.params, metrics=metrics, step_time=started)
        final = "FINISHED" if error is None else "FAILED"
        ended = score.ended_ms if score else _now_ms()
        _unlocked(self.client.set_terminated, run.info.run_id, final, end_time=ended)
        return run.info.run_id

    def finished_trials(self, split_key: str) -> dict[str, tuple[str, dict[str, float]]]:
        """Trials on this split that some sweep of the experiment finished: key → (run, metrics)."""
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.split_key = '{split_key}' and attributes.status = 'FINISHED'",
            max_results=50_000,
        )
        return {
            r.data.tags["trial_key"]: (r.info.run_id, r.data.metrics)
            for r in runs
            if "trial_key" in r.data.tags
        }

    def end_orphaned_sweeps(self) -> list[str]:
        """Sweep runs left RUNNING by a process of this machine that no longer exists (SIGKILL,
        power loss) are marked KILLED, with any trial run of theirs caught mid-write; the ids of
        those sweep runs."""
        running = self.client.search_runs(
            [self.experiment_id],
            filter_string="attributes.status = 'RUNNING' and tags.sweep_id != ''",
            max_results=5_000,
        )
        ended = []
        for run in running:
            tags = run.data.tags
            if PARENT_TAG in tags or tags.get("host") != socket.gethostname():
                continue
            if not _alive(int(tags.get("pid", "0"))):
                self.end_running_trials(run.info.run_id)
                self.client.set_terminated(run.info.run_id, "KILLED")
                ended.append(run.info.run_id)
        return ended

    def end_running_trials(self, parent_run_id: str) -> None:
        """Trial runs of this sweep still RUNNING (their process was stopped mid-write): KILLED."""
        running = self.client.search_runs(
            [self.experiment_id],
            filter_string=(
                f"tags.`{PARENT_TAG}` = '{parent_run_id}' and attributes.status = 'RUNNING'"
            ),
            max_results=50_000,
        )
        for run in running:
            _unlocked(self.client.set_terminated, run.info.run_id, "KILLED")

    def finish_sweep(self, run_id: str, metrics: Mapping[str, float], status: str) -> None:
        self._log(run_id, metrics=metrics)
        _unlocked(self.client.set_terminated, run_id, status)

    def _log(
        self,
        run_id: str,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        step_time: int | None = None,
    ) -> None:
        from mlflow.entities import Metric, Param

        timestamp = step_time or _now_ms()
        _unlocked(
            self.client.log_batch,
            run_id,
            metrics=[Metric(k, float(v), timestamp, 0) for k, v in (metrics or {}).items()],
            params=[Param(k, str(v)[:_MAX_PARAM]) for k, v in (params or {}).items()],
        )


_wal_installed = False


def _use_sqlite_wal() -> None:
    """SQLite stores in write-ahead-log mode with `synchronous=NORMAL`: a commit no longer waits
    for the disk (a crashed process loses nothing; a power cut may lose the last commits, never
    the file), and readers such as `mlflow ui` do not block a sweep's writers."""
    global _wal_installed
    if _wal_installed:
        return
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    def on_connect(connection: Any, _record: Any) -> None:
        if isinstance(connection, sqlite3.Connection):
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

    event.listen(Engine, "connect", on_connect)
    _wal_installed = True


@contextlib.contextmanager
def _sqlite_creation_lock(tracking_uri: str) -> Iterator[None]:
    """One process at a time opens a SQLite store: MLflow's table creation races otherwise."""
    if not tracking_uri.startswith("sqlite:///"):
        yield
        return
    path = Path(tracking_uri.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as database:  # SQLite takes an empty file as an empty database
        fcntl.flock(database, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(database, fcntl.LOCK_UN)


def _unlocked(write: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """A write to the tracking store, retried while another sweep holds SQLite's lock."""
    from mlflow.exceptions import MlflowException

    for attempt in range(8):
        try:
            return write(*args, **kwargs)
        except MlflowException as err:
            if "database is locked" not in str(err) or attempt == 7:
                raise
            time.sleep(0.1 * 2**attempt)
    raise AssertionError("unreachable")


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _problem(err: Exception) -> str:
    text = str(err)
    refused = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    if refused:
        return f"cannot be reached: {refused.group(1).strip()}"
    return f"cannot be used: {text.strip().splitlines()[0][:300]}"


def _now_ms() -> int:
    return int(time.time() * 1000)
