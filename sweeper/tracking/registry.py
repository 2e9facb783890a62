"""The model registry: which version of a registered model serves (`@champion`), which was
tonight's best (`@challenger`) and which served before (`@previous_champion`), and new versions
(made exactly once through a store's faults: tracking.store.RetryingClient)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

    from sweeper.tracking.tracker import Tracker

CHAMPION = "champion"  # the alias of the version a serving system loads: models:/name@champion
CHALLENGER = "challenger"  # the latest sweep's best, promoted or not
PREVIOUS_CHAMPION = "previous_champion"  # the champion before the last promotion: a way back


def champion(tracker: Tracker, name: str) -> ModelVersion | None:
    """The version of registered model `name` its `@champion` alias names; without the alias
    (a model registered before sweeper set aliases), its latest version."""
    from mlflow.exceptions import MlflowException

    try:
        found: ModelVersion = tracker.client.get_model_version_by_alias(name, CHAMPION)
        return found
    except MlflowException as err:  # no such model, or no such alias (said either way)
        if err.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise
    versions = tracker.model_versions(name)
    return max(versions, key=lambda v: int(v.version), default=None)


def version_of_run(tracker: Tracker, name: str, run_id: str) -> str | None:
    """The version of `name` registered from this run already, if any (the same trial, reused
    by a later sweep, is not registered twice)."""
    found = tracker.client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    return str(max(int(v.version) for v in found)) if found else None


def set_alias(tracker: Tracker, name: str, alias: str, version: str) -> None:
    """Point `models:/name@alias` at the version (setting an alias again is harmless)."""
    tracker.client.set_registered_model_alias(name, alias, version)


def register_version(
    tracker: Tracker,
    name: str,
    model_uri: str,
    run_id: str,
    tags: Mapping[str, str],
    description: str | None = None,
) -> str:
    """A new version of registered model `name` (created with it if new); its number."""
    from mlflow.exceptions import MlflowException

    try:
        tracker.client.create_registered_model(name)
    except MlflowException as err:  # registered before, or a lost answer retried
        if err.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise
    model_id = model_uri.removeprefix("models:/") if model_uri.startswith("models:/m-") else None
    made = tracker.client.create_model_version(
        name, model_uri, run_id=run_id, tags=dict(tags), model_id=model_id, description=description
    )
    return str(made.version)
