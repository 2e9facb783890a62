"""Command line → jobs → configs → plan, in process with Hydra's compose API (no trials run)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, open_dict

from sweeper.core.records import Plan
from sweeper.core.settings import config_dir, register_schemas
from sweeper.errors import SweeperError
from sweeper.planning.compose import compose_jobs
from sweeper.planning.expand import defer_model_values, expand
from sweeper.planning.plan import build_plan

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def hydra_initialised() -> Iterator[None]:
    register_schemas()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        yield
    GlobalHydra.instance().clear()


class CountingCompose:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, overrides: list[str]) -> DictConfig:
        self.calls += 1
        return compose("config", overrides=overrides, return_hydra_config=True)


def jobs_for(arguments: Sequence[str], params: dict | None = None) -> list[list[str]]:
    return expand(arguments, params or {}, "rf", CountingCompose(), OverridesParser.create())


def values(jobs: list[list[str]], key: str) -> list[str]:
    return [o.split("=", 1)[1] for job in jobs for o in job if o.startswith(f"{key}=")]


def test_each_model_sweeps_its_own_grid() -> None:
    jobs = jobs_for(["model=rf,lasso"])
    assert Counter(values(jobs, "model")) == {"rf": 6, "lasso": 3}
    rf = [j for j in jobs if "model=rf" in j]
    assert {
        (values([j], "model.n_estimators")[0], values([j], "model.max_depth")[0]) for j in rf
    } == {(n, d) for n in ("50", "100") for d in ("4", "8", "null")}
    assert sorted(values(jobs, "model.alpha")) == ["0.01", "0.1", "1.0"]


def test_command_line_values_alone_decide_that_models_trials() -> None:
    jobs = jobs_for(["model=lasso", "model.alpha=0.01,0.1,1"])
    assert len(jobs) == 3
    assert values(jobs, "model.alpha") == ["0.01", "0.1", "1"]
    assert len(jobs_for(["model=lasso", "model.alpha=range(1,201)"])) == 200
    assert values(jobs_for(["model=lasso", "model.alpha=choice(0.5,2)"]), "model.alpha") == [
        "0.5",
        "2",
    ]


def test_a_command_line_value_replaces_only_that_axis_of_the_grid() -> None:
    jobs = jobs_for(["model=rf", "model.n_estimators=10"])  # rf's grid: n_estimators x max_depth
    assert values(jobs, "model.n_estimators") == ["10"] * 3
    assert values(jobs, "model.max_depth") == ["4", "8", "null"]
    # A parameter the grid does not sweep adds an axis; the grid's own stay.
    jobs = jobs_for(["model=rf", "model.min_samples_leaf=1,5"])
    assert len(jobs) == 12 and Counter(values(jobs, "model.min_samples_leaf")) == {"1": 6, "5": 6}


def test_trial_names_follow_the_grid_and_round_floats() -> None:
    # The command line gives max_depth first; the name keeps the grid's order.
    argv = ["model=rf", "model.max_depth=4,8", "model.n_estimators=10,20"]
    jobs, _ = compose_jobs(jobs_for(argv), CountingCompose(), OverridesParser.create())
    assert {t.name for t in build_plan(jobs).trials} == {
        f"rf n_estimators={n} max_depth={d}" for n in (10, 20) for d in (4, 8)
    }
    alphas = ["model=lasso", "model.alpha=0.12345678,1.0,2"]
    jobs, _ = compose_jobs(jobs_for(alphas), CountingCompose(), OverridesParser.create())
    plan = build_plan(jobs)
    assert [t.name for t in plan.trials] == ["lasso alpha=0.1235", "lasso alpha=1", "lasso alpha=2"]
    assert plan.trials[0].params["model.alpha"] == "0.12345678"  # the exact value stays


def test_a_value_applies_only_to_models_that_have_it() -> None:
    jobs = jobs_for(["model=rf,lasso", "model.alpha=0.5"])
    assert Counter(values(jobs, "model")) == {"rf": 6, "lasso": 1}
    assert values(jobs, "model.alpha") == ["0.5"]


def test_other_sweeps_multiply_every_model() -> None:
    jobs = jobs_for(["model=lasso", "seed=1,2"])
    assert len(jobs) == 6
    assert Counter(values(jobs, "seed")) == {"1": 3, "2": 3}


def test_default_model_and_config_params() -> None:
    assert Counter(values(jobs_for([]), "model")) == {"rf": 6}
    jobs = jobs_for(["model=lasso"], params={"seed": "1,2,3"})
    assert len(jobs) == 9
    jobs = jobs_for(["model=lasso", "seed=7"], params={"seed": "1,2,3"})
    assert values(jobs, "seed") == ["7", "7", "7"]


def test_unknown_parameter_and_interval_are_named() -> None:
    with pytest.raises(SweeperError, match=r"model\.nonsense"):
        jobs_for(["model=rf,ridge", "model.nonsense=1,2"])
    with pytest.raises(SweeperError, match="interval"):
        jobs_for(["model=lasso", "model.alpha=interval(0,1)"])


def test_jobs_compose_once_per_distinct_non_model_configuration() -> None:
    counting = CountingCompose()
    jobs = jobs_for(["model=lasso", "model.alpha=range(1,201)"])
    composed, hydra_cfg = compose_jobs(jobs, counting, OverridesParser.create())
    assert counting.calls == 1
    assert [job.cfg.model.alpha for job in composed] == list(range(1, 201))
    assert hydra_cfg.runtime.choices.model == "lasso"

    counting = CountingCompose()
    composed, _ = compose_jobs(
        jobs_for(["model=rf,lasso", "seed=1,2"]), counting, OverridesParser.create()
    )
    assert counting.calls == 4
    assert {(j.model_name, j.cfg.seed) for j in composed} == {
        (m, s) for m in ("rf", "lasso") for s in (1, 2)
    }
    forced, _ = compose_jobs(
        [["model=lasso", "++model.tol=0.5"]], counting, OverridesParser.create()
    )
    assert forced[0].cfg.model.tol == 0.5


def test_plan_groups_trials_by_preprocess_configuration() -> None:
    jobs, _ = compose_jobs(
        jobs_for(["model=rf,lasso", "data.test_size=0.2,0.3"]),
        CountingCompose(),
        OverridesParser.create(),
    )
    plan = build_plan(jobs)
    assert len(plan.trials) == 18
    assert len(plan.groups) == 2
    assert sorted(len(plan.trials_of(g.id)) for g in plan.groups) == [9, 9]
    lasso = next(t for t in plan.trials if t.model_name == "lasso")
    assert lasso.name.startswith("lasso alpha=")
    assert "test_size=" in lasso.name
    assert lasso.params["model"] == "lasso"
    assert lasso.params["model.class"] == "sklearn.linear_model.Lasso"
    assert lasso.params["model.alpha"] == str(lasso.model["alpha"])
    assert lasso.params["data.name"] == "diabetes"
    assert lasso.model["random_state"] == 42  # interpolations are resolved


def test_a_plan_reads_back_whole_and_what_an_older_version_wrote_too() -> None:
    jobs, _ = compose_jobs(jobs_for(["model=lasso"]), CountingCompose(), OverridesParser.create())
    plan = build_plan(jobs)
    assert Plan.from_json(plan.to_json()) == plan
    # Each trial still says its `cv`, for a step image one version older, which reads it there
    # (this version takes the sweep's); a plan that image wrote reads here too.
    record = json.loads(plan.to_json())
    assert [t["cv"] for t in record["trials"]] == [5] * len(plan.trials)
    assert Plan.from_json(json.dumps(record)).trials == plan.trials


def test_sweep_wide_settings_cannot_vary() -> None:
    jobs, _ = compose_jobs(
        [["model=lasso", "mlflow.experiment=a"], ["model=lasso", "mlflow.experiment=b"]],
        CountingCompose(),
        OverridesParser.create(),
    )
    with pytest.raises(SweeperError, match="'mlflow' differs between trials"):
        build_plan(jobs)


def test_credentials_in_a_data_url_stay_out_of_params() -> None:
    cfg = compose(
        "config",
        overrides=["data=csv", "data.path=https://user:s3cret@example.com/d.csv", "data.target=y"],
    )
    with open_dict(cfg):
        cfg.pop("hydra", None)
    from sweeper.planning.plan import Job

    plan = build_plan([Job(0, (), cfg, "rf")])
    assert plan.trials[0].params["data.path"] == "https://example.com/d.csv"
    assert "s3cret" not in plan.to_json()
    assert plan.groups[0].data["path"].startswith("https://user:s3cret@")  # what reads the data


def test_multirun_model_values_are_deferred_to_the_sweeper() -> None:
    argv = [
        "model=rf,lasso",
        "model.alpha=0.5",
        "model.max_depth=null",
        "++model.tol=1",
        "seed=3",
        "-m",
    ]
    assert defer_model_values(argv) == [
        "model=rf,lasso",
        "model.alpha=choice(0.5)",
        "model.max_depth=null",
        "++model.tol=1",
        "seed=3",
        "-m",
    ]
    assert defer_model_values(["model.alpha=0.5"]) == ["model.alpha=0.5"]  # not a multirun
    jobs = jobs_for(["model=rf,lasso", "model.alpha=choice(0.5)"])
    assert Counter(values(jobs, "model")) == {"rf": 6, "lasso": 1}


def test_chunks_hold_one_models_trials_with_its_pod_resources() -> None:
    from sweeper.executors.argo import chunks

    jobs, _ = compose_jobs(
        jobs_for(["model=rf,lasso"]), CountingCompose(), OverridesParser.create()
    )
    plan = build_plan(jobs)
    cut = chunks.cut(plan, plan.trials, trials_per_pod=4, rows={})
    assert [[t.index for t in c.trials] for c in cut] == [[0, 1, 2, 3], [4, 5], [6, 7, 8]]
    assert [c.number for c in cut] == [0, 1, 2]  # rf's 6 trials, then lasso's 3
    [group] = chunks.fan_out(plan, cut)
    # What Argo sees: runs of chunk numbers sharing a pod size, not trials.
    assert group == {
        "group": plan.groups[0].id,
        "to_train": 9,
        "finished": 0,
        "pods": [
            {
                "first": 0,
                "count": 2,
                "trials": [4, 2],
                "cpu": "1",
                "memory": "2Gi",
                "memory_limit": "4Gi",
            },
            {
                "first": 2,
                "count": 1,
                "trials": [3],
                "cpu": "1",
                "memory": "1Gi",
                "memory_limit": "2Gi",
            },
        ],
    }
    # Only some trials left to train (the others finished before): fewer chunks.
    left = chunks.cut(plan, plan.trials[5:], trials_per_pod=4, rows={})
    assert [[t.index for t in c.trials] for c in left] == [[5], [6, 7, 8]]


def test_auto_chunks_give_a_pod_minutes_of_work_and_a_sweep_at_most_max_pods() -> None:
    from sweeper.executors.argo import chunks

    jobs, _ = compose_jobs(
        jobs_for(["model=lasso", "model.alpha=range(1,5001)"]),
        CountingCompose(),
        OverridesParser.create(),
    )
    plan = build_plan(jobs)
    few_rows = chunks.cut(plan, plan.trials, chunks.AUTO, rows={plan.groups[0].id: 300})
    assert len(few_rows) == 1  # 5,000 cheap fits: minutes of work in all, one pod
    many = chunks.cut(plan, plan.trials, chunks.AUTO, rows={plan.groups[0].id: 10_000_000})
    assert 100 < len(many) <= chunks.MAX_PODS  # each trial costs minutes: capped
    assert sorted(t.index for c in many for t in c.trials) == list(range(5000))
