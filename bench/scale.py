"""W7: lasso sweeps of growing size on this machine (local pool, SQLite store, `eval.cv=0`), and
a sweep into an experiment that already holds the largest one's runs.

    python bench/scale.py                          # 1,000, 10,000 and 100,000 trials (~40 min)
    python bench/scale.py --sizes 1000,10000       # those sizes only
    python bench/scale.py --smoke --out D          # tiny sizes: checks the script
    python bench/scale.py --production 10000       # on mlflow server + PostgreSQL instead

For each size, one sweep of that many lasso trials in a fresh folder, then the same command
again (every trial reused). Measured: the wall time; the seconds from the command's start to its
first trial's run (MLflow's start time); the trials' cost per trial, over the whole sweep and in
its first and last tenth (from the runs' end times: flat when a trial costs the same at any
point); the peak memory of the process tree (PSS); the lines printed; the re-run's wall time.
Then the Argo summary of the largest sweep: its plan step and summary step run as processes, as
their pods run them, on the same store (every trial found finished): wall time and peak memory
against the pod's limit (`argo.step_resources`, 2 GiB by default). Then `INTO` ridge trials
twice, into a fresh folder and into the largest sweep's experiment: their wall times, and the
ratio (1 when the experiment's size costs nothing). It prints a markdown table, and writes it to
OUT/scale.md with the rows in OUT/scale.json.

With `--production N`: one sweep of N trials and its re-run through `mlflow server` on a
throwaway PostgreSQL cluster (bench/production.py), the stack a team runs, measured the same
way; written to OUT/scale-production.md and .json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import measure
from production import Stack, mlflow_on_postgres

from sweeper.planning.definition import Definition

BENCH = Path(__file__).resolve().parent
INTO = 1_000  # trials of the sweep run into a grown experiment


@dataclass
class Scale:
    trials: int
    wall_s: float
    first_trial_s: float  # command start → the first trial's run
    per_trial_ms: float  # first trial's start → last trial's end, per trial
    first_tenth_ms: float  # per trial, over the first tenth of the trials to end
    last_tenth_ms: float  # and over the last tenth
    peak_mb: float
    lines: int
    rerun_s: float  # the same command again: every trial reused
    rerun_lines: int


def lasso(trials: int) -> list[str]:
    step = 1 / trials  # alpha = step, 2·step, …, 1: `trials` distinct values
    return ["model=lasso", f"model.alpha=range({step!r},{1 + step / 2!r},{step!r})"]


def sweep(cwd: Path, overrides: list[str], stack: Stack | None = None) -> measure.Measured:
    """`stack`: a tracking server to sweep into, instead of cwd's mlflow.db."""
    where = [f"mlflow.tracking_uri={stack.uri}"] if stack else []
    argv = [sys.executable, "-m", "sweeper", *overrides, *where, "eval.cv=0", "-m"]
    measured = measure.run(argv, cwd=cwd, timeout=7200, keep=stack.pids if stack else ())
    if measured.returncode != 0:
        raise SystemExit(f"{' '.join(overrides)} failed:\n{measured.output[-3000:]}")
    return measured


def run_times(database: str) -> list[tuple[int, int]]:
    """Each trial run's start and end (ms), in the order they ended, from the store's database
    (a SQLAlchemy URL; read with SQL: MLflow's client would take longer than the sweep)."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(database)
    with engine.connect() as connection:
        rows = connection.execute(
            sqlalchemy.text(
                "SELECT r.start_time, r.end_time FROM runs r JOIN tags t "
                "ON t.run_uuid = r.run_uuid WHERE t.key = 'mlflow.parentRunId' "
                "AND r.status = 'FINISHED' ORDER BY r.end_time"
            )
        ).fetchall()
    engine.dispose()
    return [(int(start), int(end)) for start, end in rows]


def scale(trials: int, cwd: Path, stack: Stack | None = None) -> Scale:
    """`stack`: a tracking server and its database, else cwd's mlflow.db."""
    measured = sweep(cwd, lasso(trials), stack)
    started_at = measured.ended_at - measured.wall_s
    times = run_times(stack.database if stack else f"sqlite:///{cwd / 'mlflow.db'}")
    assert len(times) == trials, f"{len(times)} runs for {trials} trials"
    first_start, last_end = min(s for s, _ in times), times[-1][1]
    tenth = max(1, trials // 10)

    def per_trial(ends: list[int]) -> float:
        return (ends[-1] - ends[0]) / max(1, len(ends) - 1)

    ends = [end for _, end in times]
    again = sweep(cwd, lasso(trials), stack)
    return Scale(
        trials,
        measured.wall_s,
        first_start / 1000 - started_at,
        (last_end - first_start) / trials,
        per_trial(ends[:tenth]),
        per_trial(ends[-tenth:]),
        measured.peak_mb,
        len(measured.output.splitlines()),
        again.wall_s,
        len(again.output.splitlines()),
    )


@dataclass
class Summary:
    """backend=argo's plan and summary steps on the largest sweep's store."""

    trials: int
    plan_s: float
    plan_mb: float
    summary_s: float
    summary_mb: float


def argo_summary(grown: Path, trials: int) -> Summary:
    """The plan pod's and the summary pod's commands (compile.py), run here on `grown`'s store
    and storage root; the preprocess pod's in between (its split is reused)."""
    definition = Definition(
        overrides=(
            *lasso(trials),
            "eval.cv=0",
            f"storage.root={grown / 'sweeper-store'}",
            f"mlflow.tracking_uri=sqlite:///{grown / 'mlflow.db'}",
        ),
        multirun=True,
    )
    sweep_id, outputs = "argo-summary", grown / "argo-outputs"
    steps = [sys.executable, "-m"]
    plan = measure.run(
        [
            *steps,
            "sweeper.executors.argo.plan_step",
            "--sweep-id",
            sweep_id,
            "--outputs",
            str(outputs),
            "--definition",
            definition.encoded(),
        ],
        cwd=grown,
    )
    if plan.returncode != 0:
        raise SystemExit(f"the plan step failed:\n{plan.output[-3000:]}")
    plan_url = str(grown / "sweeper-store" / "sweeps" / sweep_id / "plan.json")
    for group in json.loads((outputs / "groups.json").read_text()):
        command = ["steps.preprocess", "--plan", plan_url, "--group", group["group"]]
        if measure.run([*steps, *command], cwd=grown).returncode != 0:
            raise SystemExit("the preprocess step failed")
    summary = measure.run(
        [*steps, "sweeper.executors.argo.summary_step", "--plan", plan_url], cwd=grown
    )
    if summary.returncode != 0:
        raise SystemExit(f"the summary step failed:\n{summary.output[-3000:]}")
    return Summary(trials, plan.wall_s, plan.peak_mb, summary.wall_s, summary.peak_mb)


def into(grown: Path, scratch: Path, trials: int) -> tuple[float, float]:
    """The same ridge sweep into a fresh folder and into a copy of the grown experiment."""
    ridge = ["model=ridge", *lasso(trials)[1:]]
    fresh = scratch / "into-empty"
    fresh.mkdir()
    full = scratch / "into-grown"
    shutil.copytree(grown, full)
    empty_s = sweep(fresh, ridge).wall_s
    grown_s = sweep(full, ridge).wall_s
    return empty_s, grown_s


def rows_table(rows: list[Scale]) -> list[str]:
    lines = [
        "| trials | wall | to the first trial | per trial (first → last tenth) | peak memory "
        "| lines | re-run (lines) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        tenths = f"{r.first_tenth_ms:.1f} → {r.last_tenth_ms:.1f}"
        lines.append(
            f"| {r.trials:,} | {r.wall_s:,.1f} s | {r.first_trial_s:.1f} s "
            f"| {r.per_trial_ms:.1f} ms ({tenths}) | {r.peak_mb / 1024:.2f} GB "
            f"| {r.lines} | {r.rerun_s:.1f} s ({r.rerun_lines}) |"
        )
    return lines


def markdown(
    rows: list[Scale], summary: Summary, empty_s: float, grown_s: float, grown: int
) -> str:
    lines = rows_table(rows)
    lines.append("")
    lines.append(
        f"backend=argo at {summary.trials:,} trials, on that store: the plan step "
        f"{summary.plan_s:.1f} s (peak {summary.plan_mb / 1024:.2f} GB), the summary step "
        f"{summary.summary_s:.1f} s (peak {summary.summary_mb / 1024:.2f} GB; its pod's limit "
        "is 2 GiB)."
    )
    lines.append("")
    lines.append(
        f"{INTO:,} ridge trials into an empty experiment: {empty_s:.1f} s; into one holding "
        f"{grown:,} runs: {grown_s:.1f} s ({grown_s / empty_s:.2f} times)."
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--smoke", action="store_true", help="60 and 250 trials, 60 into them")
    parser.add_argument("--out", type=Path, default=BENCH)
    parser.add_argument(
        "--production", type=int, metavar="N", help="N trials on mlflow server + PostgreSQL"
    )
    args = parser.parse_args(argv)
    if args.production:
        return production(args.production, args.out)
    sizes = [60, 250] if args.smoke else [int(n) for n in args.sizes.split(",")]
    trials_into = 60 if args.smoke else INTO
    measure.become_subreaper()
    rows = []
    with tempfile.TemporaryDirectory(prefix="sweeper-scale-") as scratch:
        for trials in sizes:
            cwd = Path(scratch, f"lasso-{trials}")
            cwd.mkdir()
            rows.append(scale(trials, cwd))
            print(json.dumps(asdict(rows[-1])), flush=True)
        largest = Path(scratch, f"lasso-{max(sizes)}")
        summary = argo_summary(largest, max(sizes))
        print(json.dumps(asdict(summary)), flush=True)
        empty_s, grown_s = into(largest, Path(scratch), trials_into)
    table = markdown(rows, summary, empty_s, grown_s, max(sizes))
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scale.md").write_text(table)
    (args.out / "scale.json").write_text(
        json.dumps(
            {
                "sizes": [asdict(r) for r in rows],
                "argo_summary": asdict(summary),
                "into": {"empty_s": empty_s, "grown_s": grown_s},
            },
            indent=1,
        )
    )
    return 0


def production(trials: int, out: Path) -> int:
    measure.become_subreaper()
    with (
        tempfile.TemporaryDirectory(prefix="sweeper-postgres-") as home,  # its user's
        tempfile.TemporaryDirectory(prefix="sweeper-scale-production-") as scratch,
        mlflow_on_postgres(Path(home)) as stack,
    ):
        cwd = Path(scratch, f"lasso-{trials}")
        cwd.mkdir()
        row = scale(trials, cwd, stack)
    print(json.dumps(asdict(row)), flush=True)
    table = "\n".join(rows_table([row])) + "\n\nThrough `mlflow server` on PostgreSQL.\n"
    print(table)
    out.mkdir(parents=True, exist_ok=True)
    (out / "scale-production.md").write_text(table)
    (out / "scale-production.json").write_text(json.dumps(asdict(row), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
