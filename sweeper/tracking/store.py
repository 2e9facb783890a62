"""How this project uses an MLflow store safely: SQLite in WAL mode, one creator at a time (with
room on its disk for MLflow's migrations), writes retried while another sweep holds SQLite's
lock, every call retried through a server's transient faults, and one-line reasons for failures."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

from sweeper.core import faults, storage
from sweeper.errors import SweeperError

T = TypeVar("T")
# On each run and registered version sweeper creates: a token per create, by which an attempt
# whose answer was lost is found again instead of created twice.
CREATE_TOKEN = "sweeper.create_token"
# What a new SQLite store's tables and MLflow's migrations need: refused below it, so that a
# migration is never left half-way by a full disk.
_ROOM_FOR_NEW_STORE = 64 * 1024 * 1024

_wal_installed = False
# Each SQLite store's file as `sqlite_creation_lock` opened it, never closed: closing any file
# descriptor of a database drops every POSIX lock this process holds on it, SQLite's own
# included; another process closing its connection then takes itself for the last one and
# deletes the -wal and -shm files under this one's (its later writes are lost, or fail with
# "disk I/O error").
# Keyed by process too: a forked child shares its parent's descriptor, and so its flock.
_kept_open: dict[tuple[int, Path], IO[str]] = {}


def use_sqlite_wal() -> None:
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
def sqlite_creation_lock(tracking_uri: str) -> Iterator[None]:
    """One process at a time opens a SQLite store: MLflow's table creation races otherwise."""
    if storage.sqlite_file(tracking_uri) is None:
        yield
        return
    path = Path(tracking_uri.removeprefix("sqlite:///"))  # as written: what messages name
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # SQLite takes an empty file as an empty database
        database = _kept_open.get((os.getpid(), path.resolve())) or path.open("a")
    except OSError as err:  # a read-only file or folder (root writes it anyway)
        raise SweeperError(f"MLflow store {path} cannot be written: {err.strerror}") from None
    _kept_open[(os.getpid(), path.resolve())] = database
    # In WAL mode SQLite keeps -wal and -shm files beside the database: MLflow would retry its
    # connection for ~100 s before failing with a traceback.
    if not os.access(path.parent, os.W_OK) and not all(
        Path(f"{path}{end}").exists() for end in ("-wal", "-shm")
    ):
        raise SweeperError(
            f"MLflow store {path} cannot be written: its folder is read-only (SQLite writes "
            f"{path.name}-wal and {path.name}-shm beside it)"
        )
    new = path.stat().st_size == 0
    if new and shutil.disk_usage(path.parent).free < _ROOM_FOR_NEW_STORE:
        free = shutil.disk_usage(path.parent).free // 1024**2
        raise SweeperError(
            f"MLflow store {path} cannot be created: {free} MB free on its disk, MLflow's "
            f"tables need {_ROOM_FOR_NEW_STORE // 1024**2} MB"
        )
    fcntl.flock(database, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(database, fcntl.LOCK_UN)


def unlocked(write: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """A write to the tracking store, retried while another process holds SQLite's lock (each
    attempt waits up to 20 s itself, MLflow's busy timeout) for core.faults' retry budget; a
    lock held past it is a fault, said in one line."""
    from mlflow.exceptions import MlflowException

    began = time.monotonic()
    attempt = 0
    while True:
        try:
            return write(*args, **kwargs)
        except MlflowException as err:
            if "database is locked" not in str(err):
                raise
            waited = time.monotonic() - began
            if waited >= faults.budget():
                raise faults.Outage(
                    f"the MLflow store stayed locked by another process for {waited:.0f} s "
                    "(SQLite: database is locked); the trials not run yet stay unrun: run the "
                    "same command again once it is free"
                ) from None
            time.sleep(min(2.0, 0.1 * 2**attempt))
            attempt += 1


class RetryingClient:
    """MLflow's client with each call retried through a server's transient faults (a restart, a
    pause, a 503) for core.faults' budget, and a full disk said in one line."""

    def __init__(self, client: Any, tracking_uri: str, shown: str) -> None:
        self._client, self._uri, self._what = client, tracking_uri, f"MLflow at {shown}"

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if not callable(method):
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._said(faults.retrying, self._what, method, *args, **kwargs)

        return call

    def create_run(
        self,
        experiment_id: str,
        start_time: int | None = None,
        tags: dict[str, str] | None = None,
        run_name: str | None = None,
    ) -> Any:
        """MLflow's create_run made once through a store's faults (`create_once`): a retry
        after a lost answer finds the run by its token instead of creating a second one."""
        token = uuid.uuid4().hex
        tagged = {**(tags or {}), CREATE_TOKEN: token}

        def create() -> Any:
            return self._client.create_run(experiment_id, start_time, tagged, run_name)

        def find() -> Any:
            wanted = f"tags.`{CREATE_TOKEN}` = '{token}'"
            found = self._client.search_runs([experiment_id], wanted, max_results=1)
            return found[0] if found else None

        return self._said(create_once, self._what, create, find)

    def create_model_version(
        self,
        name: str,
        source: str,
        run_id: str,
        tags: dict[str, str],
        model_id: str | None,
        description: str | None = None,
    ) -> Any:
        """MLflow's create_model_version made once, as `create_run` is."""
        token = uuid.uuid4().hex
        tagged = {**tags, CREATE_TOKEN: token}

        def create() -> Any:
            return self._client.create_model_version(
                name, source, run_id=run_id, tags=tagged, model_id=model_id, description=description
            )

        def find() -> Any:
            versions = self._client.search_model_versions(f"name = '{name}'")
            made = [v for v in versions if v.tags.get(CREATE_TOKEN) == token]
            return min(made, key=lambda v: int(v.version), default=None)

        return self._said(create_once, self._what, create, find)

    def delete_tag(self, run_id: str, key: str) -> None:
        """Retried after a lost answer, MLflow finds the tag gone and says so: deleted."""
        try:
            self._said(faults.retrying, self._what, self._client.delete_tag, run_id, key)
        except Exception as err:
            if getattr(err, "error_code", None) != "RESOURCE_DOES_NOT_EXIST":
                raise

    def _said(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """The call, a full disk said in one line."""
        try:
            return call(*args, **kwargs)
        except Exception as err:
            where = str(storage.sqlite_file(self._uri) or self._what)
            full = faults.disk_full(err, where, "the tracking store")
            if full is not None:
                raise full from None
            raise


def create_once(what: str, create: Callable[[], T], find: Callable[[], T | None]) -> T:
    """A create through a store's faults that is never made twice: an answer can be lost after
    the server acted (a proxy's 502, a timeout), so before trying again, `find` looks for what
    the lost attempt made (by a token the caller put in it)."""
    tried = False

    def attempt() -> T:
        nonlocal tried
        if tried:
            found = find()
            if found is not None:
                return found
        tried = True
        return create()

    return faults.retrying(what, attempt)


def problem(err: Exception) -> str:
    text = str(err)
    refused = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    if refused:
        return f"cannot be reached: {refused.group(1).strip()}"
    return f"cannot be used: {text.strip().splitlines()[0][:300]}"
