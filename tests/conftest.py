"""The suite's fixtures: real servers on loopback and working directories (tests/support)."""

from support.production import postgres, production_mlflow  # noqa: F401
from support.servers import (  # noqa: F401  (pytest finds fixtures by name here)
    created_database,
    empty_workdir,
    mlflow_server,
    s3_server,
    workdir,
)
