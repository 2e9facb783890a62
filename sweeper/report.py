"""`python -m sweeper.report [SWEEP_ID]`: a past sweep's ranked table and compare link, read back
from MLflow (the latest sweep of the experiment by default; nightly Argo sweeps included).

The table comes from the `results/results.csv` the sweep left on its run; a sweep that did not
get that far (killed, still running) is shown from its trials' runs.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig, OmegaConf

from sweeper.core import storage
from sweeper.core.evidence import P_WORSE
from sweeper.core.metrics import RECORDED, ProblemType, Ranking
from sweeper.core.records import Status
from sweeper.core.settings import MlflowSettings, config_dir
from sweeper.display.table import ConfigRow, Report, Row, print_report
from sweeper.errors import SweeperError
from sweeper.safe_text import redact

if TYPE_CHECKING:
    from sweeper.tracking.tracker import Tracker


def load_report(tracking_uri: str, experiment: str, sweep_id: str | None = None) -> Report:
    from sweeper.tracking.tracker import Tracker

    database = storage.sqlite_file(tracking_uri)
    if database is not None and not database.is_file():  # MLflow would make an empty one
        raise SweeperError(f"no MLflow database at {database}")
    tracker = Tracker(tracking_uri, experiment, create=False)
    sweep = next(iter(tracker.sweep_runs(sweep_id)), None)
    if sweep is None:
        where = f"experiment '{experiment}' at {redact(tracking_uri)}"
        raise SweeperError(
            f"sweep {sweep_id} is not in {where}" if sweep_id else f"{where} has no sweep yet"
        )
    parent = sweep.info.run_id
    ranking = _ranking(sweep.data.params)
    rows = _rows_from_results(tracker, parent) or _rows_from_trials(tracker, parent, ranking)
    configurations = _configurations(tracker, parent, ranking)
    tie_level = float(sweep.data.params.get("eval.tie_level", 0.05))
    notes = [sweep.data.tags["registry"]] if "registry" in sweep.data.tags else []
    if sweep.info.status != Status.FINISHED:
        notes.append(f"The sweep's run is {sweep.info.status}.")
    return Report(
        sweep_id=sweep.data.tags.get("sweep_id", ""),
        rows=rows,
        tracking_uri=tracking_uri,
        experiment=experiment,
        experiment_id=tracker.experiment_id,
        parent_run_id=parent,
        ranking=ranking,
        notes=notes,
        configurations=configurations,
        tie_level=tie_level,
    )


def _ranking(params: dict[str, str]) -> Ranking:
    """How the sweep ranked its trials, from its run's params (a sweep from before CV selection
    has none: it ranked on test MSE)."""
    task = ProblemType(params.get("data.task", ProblemType.regression))
    return Ranking.of(params.get("eval.metric", "mse"), int(params.get("eval.cv", 0)), task)


def _logged_table(tracker: Tracker, parent: str, name: str) -> list[dict[str, str]]:
    """A table the sweep logged when it ended; none when it did not end normally."""
    with tempfile.TemporaryDirectory(prefix="sweeper-report-") as scratch:
        try:
            local = tracker.download_artifact(parent, f"results/{name}", Path(scratch))
        except Exception:  # no such artifact
            return []
        return list(csv.DictReader(local.read_text().splitlines()))


def _configurations(tracker: Tracker, parent: str, ranking: Ranking) -> list[ConfigRow]:
    """The configurations the sweep ranked, when several seeds ran (configs.csv)."""
    records = _logged_table(tracker, parent, "configs.csv")
    if not any(int(r.get("seeds") or 0) > 1 for r in records):
        return []
    keys = dict.fromkeys([ranking.key, ranking.metric])

    def number(text: str | None) -> float | None:
        return float(text) if text else None

    return [
        ConfigRow(
            r["configuration"],
            int(r["seeds"]),
            int(r["trials"]),
            {k: number(r.get(f"mean_{k}")) for k in keys},
            {k: number(r.get(f"std_{k}")) for k in keys},
            number(r.get(P_WORSE)),
        )
        for r in records
    ]


def _rows_from_results(tracker: Tracker, parent: str) -> list[Row]:
    """The table the sweep logged when it ended: it includes trials reused from earlier sweeps."""
    records = _logged_table(tracker, parent, "results.csv")
    rows = []
    for record in records:
        metrics = {k: float(record[k]) for k in RECORDED if record.get(k)}
        rows.append(
            Row(
                record["trial"],
                metrics,
                record["status"],
                record.get("run_id") or None,
                record.get("error") or None,
                float(record[P_WORSE]) if record.get(P_WORSE) else None,
                record.get("rung_reached") or "",
            )
        )
    return rows


def _rows_from_trials(tracker: Tracker, parent: str, ranking: Ranking) -> list[Row]:
    rows = [
        Row(
            run.info.run_name or run.info.run_id,
            run.data.metrics,
            run.info.status,
            run.info.run_id,
            run.data.tags.get("error.message"),
        )
        for run in tracker.trial_runs(parent)
    ]
    return sorted(rows, key=lambda r: (r.status != Status.FINISHED, ranking.loss(r.metrics)))


def _defaults() -> tuple[str, str]:
    """The tracking URI and experiment a plain `python -m sweeper` would use."""
    # The defaults, and what the config tree's own `mlflow:` block (if a user added one) says.
    tree = OmegaConf.load(Path(config_dir(), "config.yaml"))
    written = tree.get("mlflow") if isinstance(tree, DictConfig) else None
    mlflow = OmegaConf.merge(OmegaConf.structured(MlflowSettings), written or {})
    uri = os.environ.get("MLFLOW_TRACKING_URI") or str(mlflow.tracking_uri)
    return uri, str(mlflow.experiment)


def main(argv: Sequence[str] | None = None) -> int:
    uri, experiment = _defaults()
    parser = argparse.ArgumentParser(
        prog="python -m sweeper.report", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("sweep_id", nargs="?", help="a sweep's id (default: the latest)")
    parser.add_argument("--tracking-uri", default=uri, help=f"default: {uri}")
    parser.add_argument("--experiment", default=experiment, help=f"default: {experiment}")
    args = parser.parse_args(argv)
    try:
        report = load_report(args.tracking_uri, args.experiment, args.sweep_id)
    except SweeperError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
