"""How sweeper opens an MLflow store: what it sets unless the user did."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

PROBE = (
    "import os, sys\n"
    "from sweeper.tracking.tracker import Tracker\n"
    "Tracker(sys.argv[1], 'probe')\n"
    "print(os.environ['MLFLOW_DISABLE_TELEMETRY'])\n"
)


def _open_store(database: Path, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "MLFLOW_DISABLE_TELEMETRY"}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, f"sqlite:///{database}"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**clean, **env},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_a_sqlite_store_is_in_wal_mode_and_telemetry_is_off(tmp_path: Path) -> None:
    database = tmp_path / "mlflow.db"
    assert _open_store(database) == "true"
    with sqlite3.connect(database) as connection:
        [(mode,)] = connection.execute("PRAGMA journal_mode").fetchall()
    assert mode == "wal"  # persistent in the file: readers (mlflow ui) never block a sweep


def test_the_users_own_telemetry_setting_is_kept(tmp_path: Path) -> None:
    assert _open_store(tmp_path / "mlflow.db", MLFLOW_DISABLE_TELEMETRY="false") == "false"
