"""Reading and writing under `storage.root` or a data path: any fsspec URL (local, s3://, http(s)://),
and the one place that knows the layout under `storage.root`:

    <root>/preprocess/<split key>/{train,test,test_raw}.parquet, transformer.skops, meta.json
    <root>/sweeps/<sweep id>/plan.json                                      the sweep's plan
    <root>/sweeps/<sweep id>/splits/<group id>.json                         where a group's split is
    <root>/sweeps/<sweep id>/chunks/<n>.json                   an Argo train pod's trials (a plan)
    <root>/sweeps/<sweep id>/results.json                                   what came of each trial
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import fsspec

from sweeper.core import faults
from sweeper.errors import SweeperError
from sweeper.safe_text import first_line, redact

T = TypeVar("T")


def is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def absolute(url: str) -> str:
    """Local paths become absolute, so worker processes and later sweeps agree on them."""
    if is_local(url):
        return str(Path(url.removeprefix("file://")).expanduser().resolve())
    return url.rstrip("/")


def sqlite_file(tracking_uri: str) -> Path | None:
    """The file of an MLflow store on SQLite (`sqlite:///mlflow.db`), absolute; None for a
    tracking server or any other store."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return Path(tracking_uri.removeprefix("sqlite:///")).resolve()


def join(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/"), *parts])


TRAIN, TEST, META = "train.parquet", "test.parquet", "meta.json"
TEST_RAW = "test_raw.parquet"  # the test rows as the data has them: input columns and target
TRANSFORMER = "transformer.skops"  # the preprocessing, fitted on the training rows
PLAN, RESULTS = "plan.json", "results.json"
NOTICE = "notice.json"  # what a notification of the sweep says (argo.notify)


def fold_tables(number: int) -> tuple[str, str]:
    """A CV fold's two tables in a stored split: the rows it fits on and the rows it holds out,
    each transformed by the recipe fitted on the first."""
    return f"fold-{number}-fit.parquet", f"fold-{number}-held_out.parquet"


def split_url(root: str, key: str) -> str:
    return join(root, "preprocess", key)


def sweep_url(root: str, sweep_id: str, name: str) -> str:
    """A record of one sweep: PLAN, RESULTS, or split_record(group)."""
    return join(root, "sweeps", sweep_id, name)


def split_record(group_id: str) -> str:
    return f"splits/{group_id}.json"


def chunk_record(number: int | str) -> str:
    """An Argo train pod's share of a sweep (a number, or Argo's `{{…}}` for it)."""
    return f"chunks/{number}.json"


def check_root(root: str) -> None:
    """Fail early, in one line, when `storage.root` cannot be used (no bucket, no endpoint…)."""
    try:
        if is_local(root):
            Path(root.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
            return
        fs, path = fsspec.core.url_to_fs(root)
        top = path.split("/")[0]
        fs.info(top)  # the bucket (or top folder): missing, denied, unreachable
    except FileNotFoundError:
        raise SweeperError(
            f"storage.root {redact(root)} cannot be used: {top} does not exist"
        ) from None
    except Exception as err:
        reason = first_line(err)
        raise SweeperError(f"storage.root {redact(root)} cannot be used: {reason}") from None


def endpoint(url: str) -> str:
    """What answers for a URL, for an outage's one line: "S3 at http://minio:9000 (bucket b)"."""
    parts = urlsplit(url)
    if parts.scheme in ("s3", "s3a"):
        where = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        return f"S3 at {redact(where) if where else 'its default endpoint'} (bucket {parts.netloc})"
    return f"storage at {parts.scheme}://{parts.hostname or ''}"


def _remote(call: Callable[[], T], url: str) -> T:
    """A call to a remote filesystem, retried through transient faults (core.faults)."""
    return faults.retrying(endpoint(url), call)


def read_bytes(url: str, retry: bool = True) -> bytes:
    """The file's bytes. `retry`: wait out a transient fault (not for the sweep's input, which is
    said to be unreachable at once, before anything runs)."""

    def read() -> bytes:
        with fsspec.open(url, "rb") as f:
            data: bytes = f.read()
        return data

    return _remote(read, url) if retry and not is_local(url) else read()


def exists(url: str) -> bool:
    fs, path = fsspec.core.url_to_fs(url)
    if is_local(url):
        return bool(fs.exists(path))
    return _remote(lambda: bool(fs.exists(path)), url)


def write_bytes_atomic(url: str, data: bytes) -> None:
    """Write so that a reader sees either nothing or the whole file, never a part of it.

    Locally: a temporary file in the same folder, then rename. Object stores: one PUT is atomic.
    """
    if is_local(url):
        path = Path(url.removeprefix("file://"))
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException as err:
            Path(tmp).unlink(missing_ok=True)
            full = faults.disk_full(err, str(path.parent), path.name)
            if full is not None:
                raise full from None
            raise
    else:
        fs, key = fsspec.core.url_to_fs(url)
        _remote(lambda: fs.pipe_file(key, data), url)


def write_many(files: dict[str, bytes]) -> None:
    """Several files at once, each whole or not at all: an object store's PUTs run concurrently
    (fsspec's batched `pipe`), local files one by one."""
    remote = {url: data for url, data in files.items() if not is_local(url)}
    for url, data in files.items():
        if is_local(url):
            write_bytes_atomic(url, data)
    if remote:
        first = next(iter(remote))
        fs, _ = fsspec.core.url_to_fs(first)
        batch = {fsspec.core.url_to_fs(url)[1]: data for url, data in remote.items()}
        _remote(lambda: fs.pipe(batch), first)


def write_record(root: str, sweep_id: str, name: str, text: str) -> str:
    """A sweep record (`<root>/sweeps/<sweep_id>/<name>`), written atomically; returns its URL."""
    url = sweep_url(root, sweep_id, name)
    write_bytes_atomic(url, text.encode())
    return url


def read_record(root: str, sweep_id: str, name: str) -> bytes:
    return read_bytes(sweep_url(root, sweep_id, name))
