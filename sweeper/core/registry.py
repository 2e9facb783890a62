"""The model registry: which version of a registered model serves (`@champion`), and new
versions made exactly once through a store's faults."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING

from sweeper.core.mlflow_store import create_once

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

    from sweeper.core.tracking import Tracker

CHAMPION = "champion"  # the alias of the version a serving system loads: models:/name@champion
# On each version sweeper registers: a token per attempt, by which one whose answer was lost
# is found again instead of registered twice.
REQUEST_TAG = "sweeper.request"


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


def set_champion(tracker: Tracker, name: str, version: str) -> None:
    """Point `models:/name@champion` at the version (setting an alias again is harmless)."""
    tracker.client.set_registered_model_alias(name, CHAMPION, version)


def register_version(
    tracker: Tracker, name: str, model_uri: str, run_id: str, tags: Mapping[str, str]
) -> str:
    """A new version of registered model `name` (created with it if new), made once however
    many answers are lost on the way; its number."""
    from mlflow.exceptions import MlflowException

    try:
        tracker.client.create_registered_model(name)
    except MlflowException as err:  # registered before, or a lost answer retried
        if err.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise
    token = uuid.uuid4().hex
    model_id = model_uri.removeprefix("models:/") if model_uri.startswith("models:/m-") else None

    def create() -> ModelVersion:
        made: ModelVersion = tracker.retrying.once.create_model_version(
            name, model_uri, run_id=run_id, tags={**tags, REQUEST_TAG: token}, model_id=model_id
        )
        return made

    def find() -> ModelVersion | None:
        made = [v for v in tracker.model_versions(name) if v.tags.get(REQUEST_TAG) == token]
        return min(made, key=lambda v: int(v.version), default=None)

    return str(create_once(tracker.shown, create, find).version)
