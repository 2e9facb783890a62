"""Whether a process of this machine lives, and when it started: what tells a claim's or a sweep
run's holder from a later process given the same pid. Standard library only: the local fork
server's lifeline imports it before anything else."""

from __future__ import annotations

import os
from pathlib import Path


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
