"""Imported by the local fork server alone, as the first of its preloaded modules: it ends the
fork server when the sweeping process (its parent) is gone (see lifeline)."""

from __future__ import annotations

import atexit
import os

from sweeper.executors.local import lifeline

lifeline.watch(os.getppid())
# The sweep has ended and its workers with it: the server has nothing to flush, and tearing
# its preloaded imports down would keep the sweep's output open ~1 s after the sweep exits.
# (Its workers are forked children that end with os._exit and never run this.)
atexit.register(os._exit, 0)
