"""One command, measured whole: wall time, CPU time and peak memory of it and every process it
starts, including processes that outlive it (a fork server, loky workers).

This process becomes a child subreaper, so orphaned descendants are re-parented to it and reaped
here: their CPU time lands in our rusage instead of vanishing with init. Peak memory is sampled:
the sum of the proportional set size (PSS: shared pages split between their users) of every
descendant, every 100 ms or less often: a sample makes the kernel walk the page tables of every
process measured (~20 ms of CPU for sweeper's here), and sampling must not take the CPU of the
command measured.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_PR_SET_CHILD_SUBREAPER = 36
_MIN_PAUSE_S = 0.1  # between two memory samples
_MAX_SHARE_OF_A_CORE = 0.02  # that sampling may take


@dataclass(frozen=True)
class Measured:
    wall_s: float
    cpu_s: float
    peak_mb: float
    returncode: int
    output: str  # stdout and stderr, interleaved
    ended_at: float = 0.0  # epoch seconds when the command itself exited


def become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def run(
    argv: Sequence[str],
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 1800,
    keep: Collection[int] = (),
) -> Measured:
    """Run argv to completion (and every process it left behind); what it cost. `keep`: our
    own children that serve it (a database, a tracking server), not waited for."""
    log = cwd / f".measure-{time.monotonic_ns()}.log"
    sampler = _PeakSampler(keep)
    with log.open("w+") as out:
        started = time.perf_counter()
        process = subprocess.Popen(
            list(argv), cwd=cwd, env=dict(env) if env else None, stdout=out, stderr=out
        )
        sampler.start()
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        wall, ended_at = time.perf_counter() - started, time.time()
        cpu = usage.ru_utime + usage.ru_stime + _reap_descendants(30, keep)
        sampler.stop()
        out.seek(0)
        output = out.read()
    log.unlink()
    return Measured(wall, cpu, sampler.peak_bytes / 2**20, process.returncode, output, ended_at)


def _reap_descendants(timeout: float, keep: Collection[int] = ()) -> float:
    """Wait for orphans re-parented to us (any child but `keep`); the CPU seconds they (and
    their children) used."""
    cpu = 0.0
    deadline = time.monotonic() + timeout
    while True:
        orphans = [pid for pid in _children(os.getpid()) if pid not in keep]
        if not orphans:
            return cpu
        for pid in orphans:
            try:
                done, _, usage = os.wait4(pid, os.WNOHANG)
            except ChildProcessError:
                continue
            if done:
                cpu += usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            for orphan in orphans:
                for pid in [orphan, *_descendants(orphan)]:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, 9)
        time.sleep(0.02)


def _children(parent: int) -> list[int]:
    return [pid for pid, ppid in _parents().items() if ppid == parent]


def _parents() -> dict[int, int]:
    """Each process's parent, by pid."""
    parents: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            # The command name may hold spaces and parentheses: fields start after the last ')'.
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def _descendants(root: int) -> list[int]:
    parents = _parents()
    found, frontier = [], [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found.extend(children)
        frontier.extend(children)
    return found


def _pss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


class _PeakSampler:
    """The peak PSS of our descendants but `keep`'s (servers the command uses)."""

    def __init__(self, keep: Collection[int] = ()) -> None:
        self.keep = set(keep)
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        me, pause = os.getpid(), _MIN_PAUSE_S
        while not self._stop.wait(pause):
            started = time.thread_time()
            served = {p for pid in self.keep for p in [pid, *_descendants(pid)]}
            total = sum(_pss_bytes(pid) for pid in _descendants(me) if pid not in served)
            self.peak_bytes = max(self.peak_bytes, total)
            spent = time.thread_time() - started  # the kernel's page walks count as ours
            pause = max(_MIN_PAUSE_S, spent / _MAX_SHARE_OF_A_CORE)
