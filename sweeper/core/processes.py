"""Processes of this machine: whether one lives and when it started (what tells a claim's or a
sweep run's holder from a later process given the same pid), and a block a stop request waits for.
Standard library only: the local fork server's lifeline imports it before anything else."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# What a Ctrl-C is answered with while a sweep stops its workers and ends its runs.
ENDING_RUNS = "ending runs… (Ctrl-C again stops at once; the next sweep ends what is left)"


# Ctrl-Cs taken by `take_ctrl_c`'s handler, not yet known to have stopped anything.
_ctrl_c: list[int] = []


def take_ctrl_c() -> None:
    """Ctrl-C raises KeyboardInterrupt, as Python's own handler does, and is remembered. Python
    drops an exception raised inside a callback it cannot propagate from ("Exception ignored in
    … _get_module_lock": an import lock's, while modules load), so a Ctrl-C pressed while the
    command starts could be lost and the sweep run on; `raise_if_ctrl_c` raises it again.
    Python's "Exception ignored" traceback for it is not printed: it is not lost."""
    if threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGINT, _on_ctrl_c)
    if sys.unraisablehook is not _unraisable:
        _hooks[:] = [sys.unraisablehook]
        sys.unraisablehook = _unraisable


_hooks: list[Callable[[Any], object]] = []  # the unraisable hook before ours


def _unraisable(unraisable: Any) -> None:
    if isinstance(unraisable.exc_value, KeyboardInterrupt) and _ctrl_c:
        return  # remembered: raise_if_ctrl_c raises it
    _hooks[0](unraisable)


def _on_ctrl_c(signum: int, _frame: object) -> None:
    _ctrl_c.append(signum)
    raise KeyboardInterrupt


def raise_if_ctrl_c() -> None:
    """Stop here for a Ctrl-C pressed before (see take_ctrl_c), if nothing stopped for it yet:
    called where the command has loaded and is about to start work."""
    if _ctrl_c:
        _ctrl_c.clear()
        raise KeyboardInterrupt


def alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def started(pid: int) -> str:
    """When the process started (Linux: clock ticks after boot, from /proc), "" when unknown:
    with its pid, what tells the owner of a run from a later process given the same pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rpartition(")")[2].split()[19]  # field 22, counted after the command's name


def lives(pid: int, start: str) -> bool:
    """Whether the process that had `pid` and started at `start` (as `started` said then) still
    runs; a pid the OS gave to a later process since has another start time. An empty `start`
    (not known when it was recorded) is taken on the pid alone."""
    return alive(pid) and start in ("", started(pid))


@contextlib.contextmanager
def uninterrupted(*signums: int, say: str | None = None) -> Iterator[None]:
    """A stop request (SIGTERM; `signums` instead, e.g. Ctrl-C's SIGINT too) waits until the run
    being written is whole, then takes effect. With `say`, the first request that waits is
    answered with that line on stderr, and a user who insists (a second request) stops the
    block at once: what it left unended, the next sweep ends, as after kill -9.

    A Python handler rather than a blocked signal: the OS may deliver SIGTERM to any thread of
    the process (BLAS starts its own), and a thread that does not block it ends the process at
    once; a Python handler always runs in the main thread, between two steps of the write."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers; it is the one that is stopped
        return
    requested: list[int] = []

    def wait(signum: int, _frame: object) -> None:
        if say and requested:
            for number, handler in previous.items():
                signal.signal(number, handler)
            raise KeyboardInterrupt
        if say:  # not print: the main thread may be inside a write to stderr right now
            os.write(2, f"{say}\n".encode())
        requested.append(signum)

    previous = {signum: signal.signal(signum, wait) for signum in signums or (signal.SIGTERM,)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if requested:  # the stop that waited: as it would have been taken
            signal.raise_signal(requested[0])
