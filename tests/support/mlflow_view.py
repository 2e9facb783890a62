"""Reading a sweep back from MLflow, as a user comparing runs would."""

from __future__ import annotations

from dataclasses import dataclass

from mlflow.entities import Run
from mlflow.tracking import MlflowClient


@dataclass
class SweepRuns:
    parent: Run
    children: list[Run]

    @property
    def sweep_id(self) -> str:
        return self.parent.data.tags["sweep_id"]

    def by_name(self) -> dict[str, Run]:
        return {r.info.run_name: r for r in self.children}


def sweeps(tracking_uri: str, experiment: str, missing_ok: bool = False) -> list[SweepRuns]:
    """Every sweep in the experiment, oldest first, with its child runs (`missing_ok`: none
    when nothing ever created the experiment)."""
    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None and missing_ok:
        return []
    assert found is not None, f"no experiment {experiment!r} at {tracking_uri}"
    runs = client.search_runs([found.experiment_id], max_results=5000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    result = [
        SweepRuns(
            parent=p,
            children=[r for r in runs if r.data.tags.get("mlflow.parentRunId") == p.info.run_id],
        )
        for p in parents
    ]
    return sorted(result, key=lambda s: s.parent.info.start_time)
