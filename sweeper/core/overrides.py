"""Hydra's override lines (`key=value`, `+key=value`, `~key`) as the sweep reads them, and the names
of the model group, in one place. Parsing a line's value stays Hydra's (`OverridesParser`): here
only the key is taken apart, which needs no config tree."""

from __future__ import annotations

MODEL_GROUP = "model"  # the config group models are chosen from: `model=rf,lasso`
MODEL_VALUE = "model."  # the prefix of a model's own values: `model.alpha=0.1`


def key_value(override: str) -> tuple[str, str]:
    """The key (a group or a dotted key, without Hydra's `+`, `++` or `~`) and the value's text."""
    key, _, value = override.lstrip("+~").partition("=")
    return key, value


def key(override: str) -> str:
    return key_value(override)[0]
