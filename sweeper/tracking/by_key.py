"""Runs looked up by trial key through an index, so that a lookup costs the same in an
experiment of a thousand runs and of a million.

MLflow keeps a run's tags in one table keyed by (tag name, run): a search for the runs whose
`trial_key` tag has some value reads every `trial_key` row of the store (81 ms per lookup at
100,000 runs). On the SQL stores sweeper opens itself (SQLite, PostgreSQL) it adds one partial
index to that table, on the values of the `trial_key` tag only (short hashes: far below any
database's limit on an index entry), named `sweeper_trial_key`. MLflow's own searches use it
(a claim's lookup of its key), and `finished` reads the finished runs of a set of keys in a few
queries per 500 keys, fetching only the columns the reuse lookup needs.

A tracking server's database is its operators': sweeper cannot add the index there, and
`Tracker` reads through MLflow's REST API instead (docs/mlflow.md gives the index to add).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

from sweeper.core.records import Status
from sweeper.safe_text import redact_text

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

INDEX = "sweeper_trial_key"
# The tags this module reads; tracking.tracker writes them under the same names.
KEY_TAG, FOLDS_TAG, STOPPED_TAG = "trial_key", "cv_folds", "cv.stopped_after"
_BATCH = 500  # keys (or runs) per query: far below SQLite's and PostgreSQL's limits on variables
_SCHEMES = ("sqlite", "postgresql")  # the stores whose tables sweeper may index


class KeyedRun(NamedTuple):
    """A finished trial run as the reuse lookup needs it: no params, no other tags."""

    run_id: str
    metrics: dict[str, float]
    folds_text: str | None  # its `cv_folds` tag, as stored
    stopped: bool  # it has a `cv.stopped_after` tag


def indexable(tracking_uri: str) -> bool:
    """Whether sweeper reads this store's tables itself (a SQL store it opens, not a server)."""
    return tracking_uri.partition(":")[0].partition("+")[0] in _SCHEMES


class KeyIndex:
    """One SQL store's runs by trial key. `ensure` adds the index (once per store: idempotent),
    `finished` reads through it."""

    def __init__(self, tracking_uri: str) -> None:
        assert indexable(tracking_uri), "a server's store is read through MLflow's client"
        self.tracking_uri = tracking_uri
        self._engine: Engine | None = None
        self._indexed_by: str | None = None  # SQLite's hint to read through the index, once known

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from sqlalchemy import create_engine
            from sqlalchemy.pool import NullPool

            # No pool: a connection per lookup, so that no idle one holds a worker's SQLite
            # file open (see tracking.store's note on POSIX locks) or a server's slot.
            self._engine = create_engine(self.tracking_uri, poolclass=NullPool)
        return self._engine

    def ensure(self) -> None:
        """Add the index unless the store has it. On PostgreSQL without locking the table for
        writes (CONCURRENTLY); a store that refuses (no right to create an index) is only
        slower, which is said once."""
        from sqlalchemy import text
        from sqlalchemy.exc import SQLAlchemyError

        where = f"ON tags (value) WHERE key = '{KEY_TAG}'"
        try:
            if self.engine.dialect.name == "postgresql":
                with self.engine.connect().execution_options(
                    isolation_level="AUTOCOMMIT"
                ) as connection:
                    connection.execute(
                        text(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {INDEX} {where}")
                    )
            else:
                with self.engine.begin() as connection:
                    connection.execute(text(f"CREATE INDEX IF NOT EXISTS {INDEX} {where}"))
        except SQLAlchemyError as err:
            log.warning(
                "MLflow's tags table could not be indexed by trial key (%s): lookups read "
                "every trial's key",
                redact_text(str(getattr(err, "orig", None) or err).splitlines()[0]),
            )

    def finished(self, experiment_id: str, keys: Collection[str]) -> dict[str, KeyedRun]:
        """The FINISHED, active runs of the experiment with these trial keys: for a key logged
        finished more than once, the first."""
        from sqlalchemy import bindparam, text

        found: dict[str, tuple[int, str]] = {}
        runs = text(
            f"SELECT t.value, r.run_uuid, r.start_time FROM tags t{self._hint()} "
            "JOIN runs r ON r.run_uuid = t.run_uuid "
            f"WHERE t.key = '{KEY_TAG}' AND t.value IN :keys AND r.experiment_id = :experiment "
            f"AND r.status = '{Status.FINISHED.value}' AND r.lifecycle_stage = 'active'"
        ).bindparams(bindparam("keys", expanding=True))
        metrics = text(
            "SELECT run_uuid, key, value, is_nan FROM latest_metrics WHERE run_uuid IN :runs"
        ).bindparams(bindparam("runs", expanding=True))
        tags = text(
            "SELECT run_uuid, key, value FROM tags WHERE run_uuid IN :runs "
            f"AND key IN ('{FOLDS_TAG}', '{STOPPED_TAG}')"
        ).bindparams(bindparam("runs", expanding=True))
        with self.engine.connect() as connection:
            for batch in _batches(sorted(set(keys))):
                rows = connection.execute(runs, {"keys": batch, "experiment": int(experiment_id)})
                for key, run_id, started in rows:
                    first = (started or 0, run_id)
                    if key not in found or first < found[key]:
                        found[key] = first
            run_ids = sorted(run_id for _, run_id in found.values())
            values: dict[str, dict[str, float]] = {run_id: {} for run_id in run_ids}
            extra: dict[str, dict[str, str]] = {run_id: {} for run_id in run_ids}
            for batch in _batches(run_ids):
                for run_id, name, value, is_nan in connection.execute(metrics, {"runs": batch}):
                    values[run_id][name] = math.nan if is_nan else float(value)
                for run_id, name, value in connection.execute(tags, {"runs": batch}):
                    extra[run_id][name] = value
        return {
            key: KeyedRun(
                run_id, values[run_id], extra[run_id].get(FOLDS_TAG), STOPPED_TAG in extra[run_id]
            )
            for key, (_, run_id) in found.items()
        }

    def _hint(self) -> str:
        """SQLite's planner, without statistics, reads a key IN a list through the primary key
        (every `trial_key` row) rather than through the index: it is told which to use, when
        the store has it. PostgreSQL's planner chooses by its statistics."""
        from sqlalchemy import text

        if self._indexed_by is None:
            self._indexed_by = ""
            if self.engine.dialect.name == "sqlite":
                with self.engine.connect() as connection:
                    has = connection.execute(
                        text("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = :name"),
                        {"name": INDEX},
                    ).first()
                self._indexed_by = f" INDEXED BY {INDEX}" if has else ""
        return self._indexed_by


def _batches(items: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(items), _BATCH):
        yield items[start : start + _BATCH]
