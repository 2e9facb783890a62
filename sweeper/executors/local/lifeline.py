"""The local sweep's processes end with it, even when it is killed outright (`kill -9`).

Its fork server and workers are not its children in the usual sense: the workers are forked
from the fork server, and a process killed with SIGKILL runs no clean-up. So each of them
watches the sweeping process itself and ends at once when it is gone: no worker starts a queued
trial after its sweep died, and none sits idle holding memory. A trial cut short leaves its run
RUNNING, which the next sweep in the experiment marks KILLED.
"""

from __future__ import annotations

import os
import threading
import time

from sweeper.core.processes import alive

POLL_SECONDS = 0.5


def watch(owner: int) -> None:
    """End this process (within POLL_SECONDS) once process `owner` no longer exists."""

    def keep_watching() -> None:
        while alive(owner):
            time.sleep(POLL_SECONDS)
        os._exit(1)  # no clean-up: the sweep that wanted the work is gone

    threading.Thread(target=keep_watching, name="sweeper-lifeline", daemon=True).start()
