"""How the local executor orders trials (longest first, by a work estimate of the model config)
and learns which finished."""

from __future__ import annotations

import threading
from concurrent.futures import Future

import pytest

from sweeper.core.cost import work_estimate
from sweeper.executors.local.pool import Pending

pytestmark = pytest.mark.unit


def test_more_and_deeper_trees_are_estimated_to_take_longer() -> None:
    rf = {"_target_": "sklearn.ensemble.RandomForestRegressor", "n_estimators": 20}
    by_depth = [work_estimate({**rf, "max_depth": d}) for d in (4, 6, 8, 10)]
    assert by_depth == sorted(by_depth) and len(set(by_depth)) == 4
    assert work_estimate({**rf, "max_depth": None}) > work_estimate({**rf, "max_depth": 10})
    assert work_estimate({**rf, "n_estimators": 200, "max_depth": 4}) > by_depth[-1]
    # Bigger leaves stop trees earlier.
    assert work_estimate({**rf, "max_depth": 8, "min_samples_leaf": 5}) < by_depth[2]


def test_configs_without_those_knobs_count_the_same() -> None:
    lasso = {"_target_": "sklearn.linear_model.Lasso", "alpha": 0.1}
    assert work_estimate(lasso) == work_estimate({**lasso, "alpha": 100})
    assert work_estimate(lasso) < work_estimate({"n_estimators": 20, "max_depth": 4})


def test_pending_work_is_reported_in_the_order_it_finishes() -> None:
    pending: Pending[str] = Pending()
    first, second, third, done_before = Future(), Future(), Future(), Future()
    done_before.set_result(0)
    for future, work in ((first, "a"), (second, "b"), (third, "c"), (done_before, "d")):
        pending.add(future, work)
    assert pending.finished() == (done_before, "d")  # done when added: reported at once
    # Finished from another thread, as a pool's manager thread sets results.
    threading.Thread(target=lambda: (third.set_result(3), first.set_result(1))).start()
    assert pending.finished() == (third, "c")
    assert pending.finished() == (first, "a")
    assert len(pending) == 1 and list(pending) == [second]


def test_work_taken_out_before_it_finishes_is_never_reported() -> None:
    pending: Pending[str] = Pending()
    broken, kept = Future(), Future()
    pending.add(broken, "lost with a broken pool")
    pending.add(kept, "kept")
    assert pending.take(broken) == "lost with a broken pool"
    broken.set_exception(RuntimeError("pool broke"))
    kept.set_result(None)
    assert pending.finished() == (kept, "kept")
    assert not pending
