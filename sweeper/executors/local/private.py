"""A local sweep's private folder: its workers' markers (which trial each is fitting) and the
fitted models they hand over (trial.kept). Named after the sweeping process, so that the folder of
a sweep killed outright (kill -9, a power cut), which no clean-up ran for, is removed by the next
sweep on this machine; a kept forest can take hundreds of MB."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from sweeper.core.processes import lives, started

PREFIX = "sweeper-workers-"


def make_folder() -> str:
    """A new private folder for this process's sweep, once the folders of dead sweeps are gone."""
    remove_orphans(Path(tempfile.gettempdir()))
    me = os.getpid()
    return tempfile.mkdtemp(prefix=f"{PREFIX}{me}-{started(me)}-")


def remove_orphans(root: Path) -> list[Path]:
    """Remove the private folders under `root` whose sweeping process is gone (its pid ended, or
    now belongs to a process started later); the folders removed."""
    removed = []
    for folder in root.glob(f"{PREFIX}*"):
        owner = _owner(folder.name)
        if owner is not None and not lives(*owner):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _owner(name: str) -> tuple[int, str] | None:
    """The pid and start time a folder is named after; None for a name not made here."""
    pid, _, rest = name.removeprefix(PREFIX).partition("-")
    start, _, suffix = rest.partition("-")
    if not (pid.isdigit() and start.isdigit() and suffix):
        return None
    return int(pid), start
