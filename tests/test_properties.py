"""Properties that must hold for any input: names Kubernetes accepts, keys that identify trials."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hypothesis import example, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from sweeper.core.records import trial_key
from sweeper.core.settings import config_dir, register_schemas
from sweeper.executors.argo.names import dns_label, label_value
from sweeper.planning.compose import compose_jobs
from sweeper.planning.expand import expand
from sweeper.planning.plan import build_plan

pytestmark = pytest.mark.unit

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


@given(st.text(max_size=300), st.integers(min_value=12, max_value=63))
def test_dns_labels_are_valid_and_stable(text: str, limit: int) -> None:
    label = dns_label(text, limit)
    assert DNS_LABEL.match(label) and len(label) <= limit
    assert dns_label(text, limit) == label


@given(st.text(max_size=200), st.text(max_size=200))
def test_distinct_texts_get_distinct_dns_labels(first: str, second: str) -> None:
    if first != second:
        assert dns_label(first) != dns_label(second)


@given(st.text(max_size=300))
def test_label_values_are_valid(text: str) -> None:
    value = label_value(text)
    assert LABEL_VALUE.match(value) and len(value) <= 63


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
)


@given(st.dictionaries(st.text(max_size=10), scalars, max_size=8), st.text(max_size=20))
def test_trial_keys_ignore_order_and_see_every_value(model: dict, split_key: str) -> None:
    reordered = dict(reversed(list(model.items())))
    assert trial_key(split_key, model) == trial_key(split_key, reordered)
    for name in model:
        changed = {**model, name: ["changed", model[name]]}
        assert trial_key(split_key, changed) != trial_key(split_key, model)
    assert trial_key(split_key + "x", model) != trial_key(split_key, model)


@given(st.dictionaries(st.text(max_size=10), st.integers(-(2**53), 2**53), max_size=8))
def test_trial_keys_compare_numbers_by_value(model: dict) -> None:
    as_floats = {name: float(value) for name, value in model.items()}
    assert trial_key("split", as_floats) == trial_key("split", model)  # alpha 1 is alpha 1.0
    for name, value in model.items():
        if value in (0, 1):  # a boolean is not the number it equals
            assert trial_key("split", {**model, name: bool(value)}) != trial_key("split", model)


@pytest.fixture(scope="module")
def hydra_initialised() -> Iterator[None]:
    register_schemas()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        yield
    GlobalHydra.instance().clear()


def plan_for(arguments: list[str]):  # type: ignore[no-untyped-def]
    def composed(overrides: list[str]):  # type: ignore[no-untyped-def]
        return compose("config", overrides=overrides, return_hydra_config=True)

    parser = OverridesParser.create()
    jobs = expand(arguments, {}, "rf", composed, parser)
    return build_plan(compose_jobs(jobs, composed, parser)[0], sweep_id="s")


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(min_value=1e-6, max_value=1e6), min_size=1, max_size=6, unique=True))
@example(alphas=[999952.0, 999950.0])  # both 1e+06 at 4 significant digits (found by hypothesis)
def test_override_values_give_unique_stable_trials(hydra_initialised: None, alphas: list) -> None:
    arguments = ["model=lasso", "model.alpha=" + ",".join(map(repr, alphas))]
    plan, again = plan_for(arguments), plan_for(arguments)
    names = [t.name for t in plan.trials]
    assert len(names) == len(set(names)) == len(alphas)
    assert names == [t.name for t in again.trials]
    keys = [trial_key("split", t.model) for t in plan.trials]
    assert keys == [trial_key("split", t.model) for t in again.trials]
    assert len(set(keys)) == len(alphas)


def _typed(value: object) -> str:
    """A value as one types it in a sweep."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value)


values = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**12), 10**12), st.floats(allow_nan=False, width=64)
)


@settings(max_examples=25, deadline=None)
@given(st.lists(values, min_size=1, max_size=6))
def test_expanded_values_are_what_parsing_their_lines_gives(
    hydra_initialised: None, given_values: list
) -> None:
    """expand hands compose_jobs the overrides of the lines it writes (so 100,000 of them are
    not parsed again), and those must be the very overrides that parsing the lines gives; and
    the fast path's resolved model values must be what Hydra's own composition gives."""

    def composed(overrides: list[str]):  # type: ignore[no-untyped-def]
        return compose("config", overrides=overrides, return_hydra_config=True)

    parser = OverridesParser.create()
    parsed: dict = {}
    sweep = "model.alpha=" + ",".join(map(_typed, given_values))
    jobs = expand(["model=lasso", sweep], {}, "rf", composed, parser, parsed=parsed)
    assert parsed  # the grid's values at least (a single value is no sweep: parsed later)
    for line, built in parsed.items():
        again = parser.parse_override(line)
        assert (built.type, built.key_or_group, built.value_type, built.package) == (
            again.type,
            again.key_or_group,
            again.value_type,
            again.package,
        )
        assert repr(built.value()) == repr(again.value())
    fast, _ = compose_jobs(jobs, composed, parser, parsed=parsed)
    slow, _ = compose_jobs(jobs, composed, OverridesParser.create())
    for quick, hydra_way in zip(fast, slow, strict=True):
        hydra_model = dict(OmegaConf.to_container(hydra_way.cfg, resolve=True)["model"])  # type: ignore[index]
        assert repr(quick.resolved_config()["model"]) == repr(hydra_model)
