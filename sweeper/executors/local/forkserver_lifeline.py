"""Imported by the local fork server alone, as the first of its preloaded modules: it ends the
fork server when the sweeping process (its parent) is gone (see lifeline)."""

from __future__ import annotations

import os

from sweeper.executors.local import lifeline

lifeline.watch(os.getppid())
