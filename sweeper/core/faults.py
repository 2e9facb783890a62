"""Infrastructure faults are faults, not trial failures: a storage or tracking call that meets a
transient error (connection refused or reset, a timeout, a 5xx, throttling) is retried with
backoff for a bounded time, `SWEEPER_RETRY_SECONDS` (default 120: a restarted or paused server);
past it, `Outage` names the endpoint in one line and the sweep stops, its trials not yet run left
unrun for the next command to resume. A full disk is one line naming the path being written.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from sweeper.errors import SweeperError

T = TypeVar("T")
DEFAULT_RETRY_SECONDS = 120.0
_BACKOFF_MAX = 10.0  # seconds between two attempts, at most

# Exception types (by name: none of these libraries is imported here) and message parts that
# mean "try again": the endpoint did not answer, or answered that it is overloaded.
_TRANSIENT_TYPES = {
    "ConnectionError",
    "ConnectionRefusedError",
    "ConnectionResetError",
    "ConnectionAbortedError",
    "BrokenPipeError",
    "TimeoutError",
    "Timeout",
    "ConnectTimeout",
    "ReadTimeout",
    "ReadTimeoutError",
    "ConnectTimeoutError",
    "EndpointConnectionError",
    "ConnectionClosedError",
    "ClientConnectorError",
    "ServerDisconnectedError",
    "ClientOSError",
    "MaxRetryError",
    "ProtocolError",
    "IncompleteRead",
}
_TRANSIENT_TEXT = (
    "connection refused",
    "connection reset",
    "connection aborted",
    "read timed out",
    "timed out",
    "max retries exceeded",
    "remote end closed",
    "remotedisconnected",
    "could not connect to the endpoint",
    "service unavailable",
    "bad gateway",
    "gateway timeout",
    "internal server error",
    "too many requests",
    "slowdown",
    "slow down",
    "throttl",
    "requesttimeout",
    "status code 50",
    "status_code=50",
    "error code 50",
    "response code 50",
    " 503",
    " 502",
    " 504",
    " 429",
)

_budget_override: float | None = None


class Fault(SweeperError):
    """Not the sweep's input nor a trial's doing: it stops the sweep, whose trials not yet run
    stay unrun for the next command."""


class Outage(Fault):
    """A store stayed unreachable for the whole retry budget."""


class DiskFull(Fault):
    """A local write found no space left."""


def budget() -> float:
    if _budget_override is not None:
        return _budget_override
    try:
        return max(0.0, float(os.environ.get("SWEEPER_RETRY_SECONDS", DEFAULT_RETRY_SECONDS)))
    except ValueError:
        return DEFAULT_RETRY_SECONDS


@contextlib.contextmanager
def without_retries() -> Iterator[None]:
    """The block's calls are tried once: ending a sweep that an outage stopped waits no more."""
    global _budget_override
    before, _budget_override = _budget_override, 0.0
    try:
        yield
    finally:
        _budget_override = before


def transient(err: BaseException) -> bool:
    """Whether the error (or one it was raised from) says the endpoint may answer later."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno == errno.ENOSPC:
            return False
        if {t.__name__ for t in type(current).__mro__} & _TRANSIENT_TYPES:
            return True
        text = str(current).lower()
        if any(part in text for part in _TRANSIENT_TEXT):
            return True
        current = current.__cause__ or current.__context__
    return False


def retrying(what: str, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`call(*args, **kwargs)`, retried on transient errors for the retry budget; `what`
    names the endpoint in the one line of an `Outage`."""
    deadline = time.monotonic() + budget()
    attempt = 0
    while True:
        try:
            return call(*args, **kwargs)
        except Exception as err:
            if not transient(err):
                raise
            if time.monotonic() >= deadline:
                raise Outage(
                    f"{what} did not answer for {budget():.0f} s ({reason(err)}); the trials "
                    "not run yet stay unrun: run the same command again to resume"
                ) from None
            attempt += 1
            pause = min(_BACKOFF_MAX, 0.5 * 2**attempt) * (0.5 + random.random() / 2)
            time.sleep(max(0.0, min(pause, deadline - time.monotonic())))


def reason(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def disk_full(err: BaseException, path: str, writing: str) -> DiskFull | None:
    """The one-line error for a write that found the disk full, if that is what `err` says."""
    full = (isinstance(err, OSError) and err.errno == errno.ENOSPC) or (
        "database or disk is full" in str(err)
    )
    if not full:
        return None
    return DiskFull(f"no space left on the disk writing {writing} to {path}")
