"""The benchmark: the same sweeps through sweeper and through what a Hydra user would otherwise use,
in one run, on this machine.

    python bench/run.py                  # ~10 min on 2 cores: the table, and in bench/ the
                                         # RESULTS.md table, results.csv and results.png
    python bench/run.py --smoke --out D  # tiny sizes, every participant once: checks the script

Participants: sweeper; a plain Hydra app (bench/peers/hydra_app) on hydra-joblib-launcher with one
job per core, and on Hydra's basic launcher; the original pipeline's scripts (bench/peers/article:
preprocess once, then the model's script); for W5, scikit-learn's own GridSearchCV
(bench/peers/gridsearch.py). Workloads: W1 200 cheap lasso trials on the bundled data; W2 8
random forests on diamonds.csv; W3 both again (sweeper reuses its finished trials); W4 rendering
10,000 trials as an Argo manifest, and the Argo plan step planning 100,000 trials; W5 a
cross-validated lasso grid on diamonds.csv (sweeper's default eval.cv=5, logging everything)
against GridSearchCV(Pipeline(preprocess, model), KFold(5, shuffle), n_jobs=cores), and sweeper
with eval.early_stop=true (its fits counted); W6 27 HistGradientBoosting configurations
(learning_rate x max_depth x min_samples_leaf) on diamonds.csv as a full grid, with
search=halving, and with HalvingGridSearchCV(factor=3); then over W6_SEEDS seeds, how often
halving's winner is the full grid's or within one standard error of it. Every participant starts
from the same existing mlflow.db (SQLite) in a working directory of its own; the limits are
measured in the same run.

    python bench/run.py --only W5,W6    # those workloads alone (RESULTS.md is not rewritten)
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import measure

BENCH = Path(__file__).resolve().parent
PROJECT = BENCH.parent
PEERS = BENCH / "peers"
CORES = os.cpu_count() or 1
SWEEPER = "sweeper"
PARTICIPANTS = (SWEEPER, "hydra + joblib", "hydra basic", "article scripts")
GRIDSEARCH = "GridSearchCV"
HALVING_PEER = "HalvingGridSearchCV"
SWEEPER_GRID = "sweeper, full grid"  # W6: what halving is compared with
EARLY_STOP = "sweeper early_stop"  # W5 with eval.early_stop=true
# W6's Optuna study: streamed (hydra/sweeper=optuna_async) and in Hydra's batches
STUDIES = {"sweeper optuna_async": "optuna_async", "sweeper optuna, batches": "optuna"}
STUDY_WORKERS = 4
W6_GRID: dict[str, list[float | int | None]] = {
    "learning_rate": [0.05, 0.1, 0.2],
    "max_depth": [3, 6, None],
    "min_samples_leaf": [10, 20, 40],
}
# A trial's line in sweeper's log: `[2026-12-02 01:16:53,577][HYDRA] [8/8] rf …`
_TRIAL_LINE = re.compile(
    r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]\[HYDRA\] \[(\d+)/(\d+)\]", re.M
)
MARKERS = ("<!-- measured:start -->", "<!-- measured:end -->")


@dataclass(frozen=True)
class Sizes:
    lasso_trials: int
    depths: tuple[int, ...]
    render_trials: int
    plan_trials: int  # the Argo plan step's grid (W4 plan)
    help_runs: int
    peers_in_w2: bool  # the smoke run exercises the peers on W1 only
    peers_again: bool  # W3 for the peers too (they have nothing to reuse: the same work again)
    cv_alphas: int  # W5's grid: lasso alpha=1..cv_alphas, 5-fold CV
    w6_grid: dict[str, list[float | int | None]]  # W6's HistGradientBoosting grid
    w6_seeds: int  # seeds over which halving's winner is compared with the full grid's
    study_trials: int  # W6's Optuna study of mixed SVR and lasso trials on 4 workers
    study_test_size: float  # its txhousing.csv split: the smoke run trains on a tenth


FULL = Sizes(
    lasso_trials=200,
    depths=(4, 6, 8, 10),
    render_trials=10_000,
    plan_trials=100_000,
    help_runs=5,
    peers_in_w2=True,
    peers_again=True,
    cv_alphas=30,
    w6_grid=W6_GRID,
    w6_seeds=10,
    study_trials=32,
    study_test_size=0.3,
)
SMOKE = Sizes(
    lasso_trials=4,
    depths=(4,),
    render_trials=100,
    plan_trials=200,
    help_runs=1,
    peers_in_w2=False,
    peers_again=False,
    cv_alphas=2,
    w6_grid={
        "learning_rate": [0.1, 0.2],
        "max_depth": [3, None],
        "min_samples_leaf": [20],
        "max_iter": [10],  # the smoke run checks the script, not the model: 10 iterations
    },
    w6_seeds=1,
    study_trials=6,
    study_test_size=0.9,
)


@dataclass
class Row:
    workload: str
    participant: str
    wall_s: float
    cpu_s: float | None = None
    peak_mb: float | None = None
    vs_sweeper: float | None = None  # this wall time / sweeper's, same workload
    note: str = ""


class Bench:
    def __init__(self, sizes: Sizes, data_dir: Path, scratch: Path) -> None:
        self.sizes, self.scratch = sizes, scratch
        self.diamonds = data_dir / "diamonds.csv"
        if not self.diamonds.is_file():
            raise SystemExit(f"bench: {self.diamonds} not found (use --data-dir)")
        self.env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}  # the same for everyone
        self.template = scratch / "template.db"
        self.rows: list[Row] = []
        self.limits: dict[str, dict[str, float]] = {}
        self.after_last_trial: dict[str, float] = {}  # sweeper: last trial's log line → exit
        self.fits: dict[str, int] = {}  # W5: the model fits each sweeper participant made
        self.within_one_se: list[bool] = []  # W6, per seed: halving's winner vs the grid's
        self.busy: dict[str, float] = {}  # W6 study: the workers' busy share, per sweeper
        self.failures: list[str] = []

    # ---- set-up -------------------------------------------------------------------------
    def make_template(self) -> None:
        """An mlflow.db with MLflow's tables: every participant starts from a copy. (On a new
        file, two joblib workers race MLflow's table creation and the peer fails.)"""
        code = "from mlflow.tracking import MlflowClient as C; C(sys.argv[1]).search_experiments()"
        measured = measure.run(
            [sys.executable, "-c", f"import sys; {code}", f"sqlite:///{self.template}"],
            cwd=self.scratch,
            env=self.env,
        )
        self._check("template", measured)

    def workdir(self, name: str) -> Path:
        path = self.scratch / name.replace(" ", "-").replace("+", "")
        if not path.exists():
            path.mkdir()
            source, copy = sqlite3.connect(self.template), sqlite3.connect(path / "mlflow.db")
            source.backup(copy)  # SQLite's own copy: the store may be in WAL mode
            source.close()
            copy.close()
        return path

    # ---- the workloads --------------------------------------------------------------------
    def w1_args(self) -> list[str]:
        return ["model=lasso", f"model.alpha=range(1,{self.sizes.lasso_trials + 1})"]

    def w2_args(self) -> list[str]:
        return [
            "data=csv",
            f"data.path={self.diamonds}",
            "data.target=price",
            "model=rf",
            "model.n_estimators=20",
            f"model.max_depth={','.join(map(str, self.sizes.depths))}",
            "model.min_samples_leaf=1,5",
        ]

    def w5_args(self) -> list[str]:
        return [
            "data=csv",
            f"data.path={self.diamonds}",
            "data.target=price",
            "model=lasso",
            f"model.alpha=range(1,{self.sizes.cv_alphas + 1})",
        ]

    def w6_args(self) -> list[str]:
        values = {
            key: ",".join("null" if v is None else str(v) for v in values)
            for key, values in self.sizes.w6_grid.items()
        }
        return [
            "data=csv",
            f"data.path={self.diamonds}",
            "data.target=price",
            "model=gbr",
            *(f"model.{key}={text}" for key, text in values.items()),
        ]

    def run_participant(self, workload: str, participant: str, again: bool = False) -> Row:
        args_of = {"W1": self.w1_args, "W2": self.w2_args, "W5": self.w5_args, "W6": self.w6_args}
        sweep_args = args_of[workload]()
        # W5 and W6 in folders of their own: their splits are computed there, not found.
        cwd = self.workdir(participant if workload in ("W1", "W2") else f"{participant} {workload}")
        if participant == SWEEPER and workload == "W6":
            steps = [[sys.executable, "-m", "sweeper", *sweep_args, "search=halving", "-m"]]
        elif participant == SWEEPER_GRID:
            steps = [[sys.executable, "-m", "sweeper", *sweep_args, "-m"]]
        elif participant == EARLY_STOP:
            steps = [[sys.executable, "-m", "sweeper", *sweep_args, "eval.early_stop=true", "-m"]]
        elif participant == SWEEPER and workload == "W5":  # its default: 5-fold CV
            steps = [[sys.executable, "-m", "sweeper", *sweep_args, "-m"]]
        elif participant == HALVING_PEER:
            steps = [self.gridsearch("sklearn.ensemble.HistGradientBoostingRegressor", True)]
        elif participant == SWEEPER:
            # The peers fit each trial once and score it on one split: so does sweeper here
            # (its default, 5-fold CV on the training rows, fits each trial six times).
            steps = [[sys.executable, "-m", "sweeper", *sweep_args, "eval.cv=0", "-m"]]
        elif participant == GRIDSEARCH:
            steps = [self.gridsearch("sklearn.linear_model.Lasso")]
        elif participant.startswith("hydra"):
            launcher = (
                ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={CORES}"]
                if "joblib" in participant
                else []
            )
            app = str(PEERS / "hydra_app" / "app.py")
            steps = [[sys.executable, app, *sweep_args, *launcher, "-m"]]
        else:
            steps = self.article_steps(workload)
        total = Row(f"{workload} again" if again else workload, participant, 0.0, 0.0, 0.0)
        for argv in steps:
            measured = measure.run(argv, cwd=cwd, env=self.env)
            self._check(f"{workload} {participant}", measured)
            if participant == SWEEPER:
                self._after_last_trial(total.workload, measured)
            if participant in (SWEEPER, EARLY_STOP) and workload == "W5":
                self.fits[participant] = _fits(cwd)
            total.wall_s += measured.wall_s
            total.cpu_s = (total.cpu_s or 0.0) + measured.cpu_s
            total.peak_mb = max(total.peak_mb or 0.0, measured.peak_mb)
        self.rows.append(total)
        print(f"  {total.workload:9} {participant:16} {total.wall_s:7.2f} s", flush=True)
        return total

    def gridsearch(self, model: str, halving: bool = False) -> list[str]:
        """scikit-learn's own search (bench/peers/gridsearch.py) over W5's or W6's grid."""
        if halving:
            grid: dict[str, list[Any]] = dict(self.sizes.w6_grid)
        else:
            grid = {"alpha": list(range(1, self.sizes.cv_alphas + 1)), "max_iter": [10000]}
        return [
            sys.executable,
            str(PEERS / "gridsearch.py"),
            "--data",
            str(self.diamonds),
            "--target",
            "price",
            "--model",
            model,
            "--grid",
            json.dumps(grid),
            "--jobs",
            str(CORES),
            *(["--halving"] if halving else []),
        ]

    def halving_quality(self) -> None:
        """Over W6_SEEDS seeds, each in one folder: the full grid, then halving (its last rung
        is the grid's trial, found finished); whether halving's winner is the grid's or within
        one standard error of it (the grid winner's fold scores' spread / sqrt(folds))."""
        cwd = self.workdir("W6 seeds")
        for seed in range(self.sizes.w6_seeds):
            for extra in ([], ["search=halving"]):
                argv = [sys.executable, "-m", "sweeper", *self.w6_args(), f"seed={seed}", *extra]
                measured = measure.run([*argv, "-m"], cwd=cwd, env=self.env)
                self._check(f"W6 seed {seed} {' '.join(extra) or 'grid'}", measured)
            grid, halving = _last_results(cwd, 2)
            best = min(grid, key=lambda t: t["metrics"]["cv_mse"])
            folds = best["folds"]["mse"]
            se = statistics.stdev(folds) / len(folds) ** 0.5
            chosen = min(
                (t for t in halving if t["status"] in ("FINISHED", "reused") and not t["stopped"]),
                key=lambda t: t["metrics"]["cv_mse"],
            )
            in_grid = next(t for t in grid if t["name"] == chosen["name"])
            near = in_grid["metrics"]["cv_mse"] <= best["metrics"]["cv_mse"] + se
            self.within_one_se.append(near)
            print(f"  W6 seed {seed}: grid {best['name']}, halving {chosen['name']}: {near}")

    def study_busy(self) -> None:
        """An Optuna study of mixed SVR (seconds each) and lasso (a tenth of that) trials on
        txhousing.csv, on STUDY_WORKERS workers, streamed and in Hydra's batches of as many
        (with a seeded random sampler both run the same trials): how busy the workers were. A
        worker is taken as busy from a trial's claim to the end of its fit (its run's start and
        end in MLflow: the logging after the fit counts as idle); _busy_share says over what."""
        data = self.diamonds.parent / "txhousing.csv"
        for participant, sweeper in STUDIES.items():
            cwd = self.workdir(f"W6 study {sweeper}")
            argv = [
                sys.executable,
                "-W",
                "ignore::FutureWarning",
                "-m",
                "sweeper",
                "data=csv",
                f"data.path={data}",
                "data.target=sales",
                f"data.test_size={self.sizes.study_test_size}",
                f"hydra/sweeper={sweeper}",
                "model=choice(lasso,svr)",
                "+model.tol=tag(log,interval(0.00001,0.01))",
                f"hydra.sweeper.n_trials={self.sizes.study_trials}",
                f"hydra.sweeper.n_jobs={STUDY_WORKERS}",
                # Random, seeded: both ask for the same trials, whatever they were told.
                "hydra/sweeper/sampler=random",
                "hydra.sweeper.sampler.seed=1",
                f"local.workers={STUDY_WORKERS}",
                "-m",
            ]
            measured = measure.run(argv, cwd=cwd, env=self.env)
            self._check(f"W6 study {sweeper}", measured)
            busy, whole = _busy_share(cwd / "mlflow.db", STUDY_WORKERS)
            self.busy[participant] = busy
            row = Row("W6 study", participant, measured.wall_s, measured.cpu_s, measured.peak_mb)
            row.note = f"workers busy {busy:.1%} until the last trial started, {whole:.1%} in all"
            self.rows.append(row)
            print(f"  W6 study {participant:24} {measured.wall_s:7.2f} s, {row.note}")

    def _after_last_trial(self, workload: str, measured: measure.Measured) -> None:
        """Seconds from the log line of the sweep's last trial to the command's exit."""
        lines = _TRIAL_LINE.findall(measured.output)
        done = [stamp for stamp, n, total in lines if n == total]
        if done:
            last = datetime.strptime(done[-1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            self.after_last_trial[workload] = measured.ended_at - last

    def article_steps(self, workload: str) -> list[list[str]]:
        article = PEERS / "article"
        split = f"split-{workload}"
        if workload == "W1":
            data: list[str] = []
            model = "sklearn.linear_model.Lasso"
            grid = {"alpha": list(range(1, self.sizes.lasso_trials + 1)), "max_iter": [10000]}
        else:
            data = ["--data", str(self.diamonds), "--target", "price"]
            model = "sklearn.ensemble.RandomForestRegressor"
            grid = {
                "n_estimators": [20],
                "max_depth": list(self.sizes.depths),
                "min_samples_leaf": [1, 5],
            }
        return [
            [sys.executable, str(article / "preprocess.py"), *data, "--out", split],
            [
                sys.executable,
                str(article / "train.py"),
                "--split",
                split,
                "--model",
                model,
                "--grid",
                json.dumps(grid),
            ],
        ]

    def measure_limits(self) -> None:
        floors = BENCH / "limits.py"
        database = self.workdir("limits") / "mlflow.db"
        runs = self.sizes.lasso_trials
        self.limits["W1"] = self._floor(
            [
                sys.executable,
                str(floors),
                "mlflow",
                "--runs",
                str(runs),
                "--uri",
                f"sqlite:///{database}",
            ],
        )
        grid = {
            "n_estimators": [20],
            "max_depth": list(self.sizes.depths),
            "min_samples_leaf": [1, 5],
        }
        self.limits["W2"] = self._floor(
            [
                sys.executable,
                str(floors),
                "fits",
                "--data",
                str(self.diamonds),
                "--target",
                "price",
                "--grid",
                json.dumps(grid),
            ],
        )
        w1, w2 = self.limits["W1"], self.limits["W2"]
        w1["limit_s"] = max(w1["startup_s"], w1["logging_s"])
        w1["serial_s"] = w1["startup_s"] + w1["logging_s"]
        w2["limit_s"] = w2["startup_s"] + w2["preprocess_s"] + w2["fit_sum_s"] / CORES
        w2["reachable_s"] = w2["startup_s"] + w2["preprocess_s"] + w2["fit_parallel_wall_s"]
        self.rows.append(
            Row(
                "W1",
                "limit",
                w1["limit_s"],
                note=(
                    f"max(start-up {w1['startup_s']:.2f} s, MLflow logging {runs} runs "
                    f"{w1['logging_s']:.2f} s); one process doing both: {w1['serial_s']:.2f} s"
                ),
            )
        )
        self.rows.append(
            Row(
                "W2",
                "limit",
                w2["limit_s"],
                note=(
                    f"start-up {w2['startup_s']:.2f} + preprocess {w2['preprocess_s']:.2f} + "
                    f"Σ fit {w2['fit_sum_s']:.2f} / {CORES} cores; the fits {CORES} at a time (Σ "
                    f"{w2['fit_sum_parallel_s']:.2f}) take {w2['fit_parallel_wall_s']:.2f}, so "
                    f"{w2['reachable_s']:.2f} is reachable"
                ),
            )
        )

    def _floor(self, argv: list[str]) -> dict[str, float]:
        argv = [*argv, "--spawned-at", f"{time.time():.6f}"]
        measured = measure.run(argv, cwd=self.scratch, env=self.env)
        self._check("limits", measured)
        return json.loads(measured.output.strip().splitlines()[-1])

    def render(self) -> None:
        manifest = self.scratch / "workflow.yaml"
        argv = [
            sys.executable,
            "-m",
            "sweeper",
            "model=lasso",
            f"model.alpha=range(1,{self.sizes.render_trials + 1})",
            "backend=argo",
            "storage.root=s3://bench/sweeps",
            "mlflow.tracking_uri=http://mlflow:5000",
            f"argo.render_to={manifest}",
            "-m",
        ]
        measured = measure.run(argv, cwd=self.workdir(SWEEPER), env=self.env)
        self._check("W4", measured)
        size = manifest.stat().st_size if manifest.exists() else 0
        self.rows.append(
            Row(
                f"W4 render {self.sizes.render_trials}",
                SWEEPER,
                measured.wall_s,
                measured.cpu_s,
                measured.peak_mb,
                1.0,
                f"manifest {size:,} bytes",
            )
        )

    def plan_step(self) -> None:
        """The Argo plan step itself, as its pod runs it: expand, check, preprocess, look up
        finished trials, open the sweep's run, write plan.json and the chunks. Here on a local
        folder and a new SQLite store; in a cluster, S3 and a tracking server."""
        from sweeper.planning.definition import Definition

        folder = self.workdir(SWEEPER)
        outputs = folder / "plan-outputs"
        definition = Definition(
            overrides=(
                "model=lasso",
                f"model.alpha=range(1,{self.sizes.plan_trials + 1})",
                f"storage.root={folder / 'plan-store'}",
                f"mlflow.tracking_uri=sqlite:///{folder / 'plan.db'}",
            ),
            multirun=True,
        )
        step = "sweeper.executors.argo.plan_step"
        argv = [
            sys.executable,
            "-m",
            step,
            "--sweep-id",
            "bench-plan",
            "--outputs",
            str(outputs),
            "--definition",
            definition.encoded(),
        ]
        measured = measure.run(argv, cwd=folder, env=self.env)
        self._check("W4 plan", measured)
        groups = outputs / "groups.json"
        size = groups.stat().st_size if groups.exists() else 0
        fanned = json.loads(groups.read_text()) if groups.exists() else []
        pods = sum(run["count"] for group in fanned for run in group["pods"])
        self.rows.append(
            Row(
                f"W4 plan {self.sizes.plan_trials}",
                SWEEPER,
                measured.wall_s,
                measured.cpu_s,
                measured.peak_mb,
                1.0,
                f"output {size:,} bytes, {pods} train pods",
            )
        )

    def help(self) -> None:
        walls = []
        for _ in range(self.sizes.help_runs):
            measured = measure.run([sys.executable, "-m", "sweeper", "--help"], cwd=self.scratch)
            self._check("--help", measured)
            walls.append(measured.wall_s)
        self.rows.append(
            Row(
                "--help",
                SWEEPER,
                statistics.median(walls),
                vs_sweeper=1.0,
                note=f"median of {len(walls)}",
            )
        )

    def _check(self, what: str, measured: measure.Measured) -> None:
        if measured.returncode != 0:
            tail = "\n".join(measured.output.strip().splitlines()[-15:])
            self.failures.append(f"{what}: exit {measured.returncode}")
            print(f"FAILED {what} (exit {measured.returncode}):\n{tail}", file=sys.stderr)

    # ---- the whole run ----------------------------------------------------------------------
    def run(self) -> None:
        self.make_template()
        print("limits", flush=True)
        self.measure_limits()
        for workload in ("W1", "W2"):
            print(workload, flush=True)
            for participant in PARTICIPANTS:
                if workload == "W1" or self.sizes.peers_in_w2 or participant == SWEEPER:
                    self.run_participant(workload, participant)
        print("W3", flush=True)
        for workload in ("W1", "W2"):
            again = PARTICIPANTS if self.sizes.peers_again else (SWEEPER,)
            for participant in again:
                self.run_participant(workload, participant, again=True)
        self.run_cross_validated()
        print("W4, --help", flush=True)
        self.render()
        self.plan_step()
        self.help()
        for row in self.rows:
            ours = self.find(row.workload, SWEEPER)
            if ours is not None and row.participant != "limit":
                row.vs_sweeper = row.wall_s / ours.wall_s

    def run_cross_validated(self) -> None:
        print("W5", flush=True)
        for participant in (SWEEPER, GRIDSEARCH, EARLY_STOP):
            self.run_participant("W5", participant)
        fits = self.fits.get(EARLY_STOP), self.fits.get(SWEEPER)
        row = self.find("W5", EARLY_STOP)
        if row is not None and all(fits):
            row.note = f"{fits[0]} of {fits[1]} fits"
        print("W6", flush=True)
        for participant in (SWEEPER, SWEEPER_GRID, HALVING_PEER):
            self.run_participant("W6", participant)
        self.halving_quality()
        self.study_busy()
        for row in self.rows:
            ours = self.find(row.workload, SWEEPER)
            if ours is not None and row.workload in ("W5", "W6"):
                row.vs_sweeper = row.wall_s / ours.wall_s

    def cross_validated_goals(self) -> list[tuple[str, str, bool]]:
        def wall(workload: str, participant: str) -> float:
            row = self.find(workload, participant)
            return row.wall_s if row else float("nan")

        fits, full = self.fits.get(EARLY_STOP, 0), self.fits.get(SWEEPER, 0)
        halving, grid, peer = (
            wall("W6", SWEEPER),
            wall("W6", SWEEPER_GRID),
            wall("W6", HALVING_PEER),
        )
        near = sum(self.within_one_se)
        return [
            (
                "W5 eval.early_stop ≤ 0.70x the fits",
                f"{fits} of {full} fits, {_ratio(fits, full):.2f}x",
                0 < fits <= 0.7 * full,
            ),
            (
                "W6 halving ≤ 0.33x the full grid",
                f"{_ratio(halving, grid):.3f}x",
                halving <= grid / 3,
            ),
            (
                "W6 halving ≤ 0.67x HalvingGridSearchCV",
                f"{_ratio(halving, peer):.3f}x",
                halving <= 0.67 * peer,
            ),
            (
                f"W6 halving's winner within 1 SE of the grid's in ≥ 9 of {self.sizes.w6_seeds}",
                f"{near} of {len(self.within_one_se)}",
                near >= min(9, self.sizes.w6_seeds),
            ),
            (
                f"W6 async Optuna study, {STUDY_WORKERS} workers: busy ≥ 95% until its last trial",
                ", ".join(f"{name} {share:.1%}" for name, share in self.busy.items()),
                self.busy.get("sweeper optuna_async", 0.0) >= 0.95,
            ),
        ]

    def find(self, workload: str, participant: str) -> Row | None:
        for row in self.rows:
            if row.workload == workload and row.participant == participant:
                return row
        return None

    def goals(self) -> list[tuple[str, str, bool]]:
        """(goal, measured, met) for each of the issue's goals that this run measured."""

        def wall(workload: str, participant: str = SWEEPER) -> float:
            row = self.find(workload, participant)
            return row.wall_s if row else float("nan")

        w1, w1_joblib, w2, w2_joblib = (
            wall("W1"),
            wall("W1", "hydra + joblib"),
            wall("W2"),
            wall("W2", "hydra + joblib"),
        )
        reachable = self.limits["W2"]["reachable_s"]
        w5, w5_peer = wall("W5"), wall("W5", GRIDSEARCH)
        tails = {w: self.after_last_trial.get(w, float("nan")) for w in ("W1", "W2", "W5")}
        w4 = self.find(f"W4 render {self.sizes.render_trials}", SWEEPER)
        size = int(w4.note.split()[1].replace(",", "")) if w4 else 0
        planned = self.find(f"W4 plan {self.sizes.plan_trials}", SWEEPER)
        note = planned.note.split() if planned else ["", "0", "", "0"]
        output, pods = int(note[1].replace(",", "")), int(note[3])
        return [
            ("W1 ≤ 0.10x the joblib peer", f"{w1 / w1_joblib:.3f}x", w1 / w1_joblib <= 0.10),
            ("W2 ≤ 0.70x the joblib peer", f"{w2 / w2_joblib:.3f}x", w2 / w2_joblib <= 0.70),
            ("W2 ≤ 1.15x its reachable limit", f"{w2 / reachable:.3f}x", w2 <= 1.15 * reachable),
            (
                "W3 cached W1 ≤ 0.25x the first run",
                f"{wall('W1 again') / w1:.3f}x",
                wall("W1 again") <= 0.25 * w1,
            ),
            (
                "W3 cached W2 ≤ 0.25x the first run",
                f"{wall('W2 again') / w2:.3f}x",
                wall("W2 again") <= 0.25 * w2,
            ),
            ("W5 ≤ 1.0x GridSearchCV", f"{w5 / w5_peer:.3f}x", w5 <= w5_peer),
            *self.cross_validated_goals(),
            (
                "last trial → exit < 1 s (W1, W2, W5)",
                ", ".join(f"{tails[w]:.2f} s" for w in tails),
                all(t < 1 for t in tails.values()),
            ),
            (
                f"W4 {self.sizes.render_trials:,} trials render < 10 s, < 64 KB",
                f"{w4.wall_s if w4 else float('nan'):.2f} s, {size:,} bytes",
                bool(w4) and w4.wall_s < 10 and 0 < size < 64 * 1024,
            ),
            (
                f"W4 {self.sizes.plan_trials:,} trials planned < 60 s, output < 64 KB, <= 1,000 "
                "pods",
                f"{planned.wall_s if planned else float('nan'):.2f} s, {output:,} bytes, "
                f"{pods} pods",
                bool(planned)
                and planned.wall_s < 60
                and 0 < output < 64 * 1024
                and 0 < pods <= 1000,
            ),
            ("`python -m sweeper --help` < 1 s", f"{wall('--help'):.2f} s", wall("--help") < 1),
        ]


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def _last_results(cwd: Path, count: int) -> list[list[dict[str, Any]]]:
    """The trials of the last `count` sweeps in a folder, oldest first, as their results.json
    records them."""
    records = sorted(
        (cwd / "sweeper-store" / "sweeps").glob("*/results.json"), key=lambda p: p.parent.name
    )
    return [json.loads(path.read_text())["trials"] for path in records[-count:]]


def _busy_share(store: Path, workers: int) -> tuple[float, float]:
    """The share of `workers` times a span that trials were running (see study_busy): from the
    first trial's claim until the last trial's (while the optimiser still had trials to give:
    what its asking decides), and until the last trial's end (with the tail a finite study
    ends on whatever its asking, its last trials running while other workers have none)."""
    with sqlite3.connect(store) as db:
        spans = db.execute(
            "SELECT r.start_time, r.end_time FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
            "WHERE t.key = 'trial_key' AND r.status = 'FINISHED'"
        ).fetchall()
    if not spans:
        return 0.0, 0.0
    first = min(start for start, _ in spans)
    shares = []
    for until in (max(start for start, _ in spans), max(end for _, end in spans)):
        busy = sum(max(0, min(end, until) - start) for start, end in spans)
        shares.append(busy / (workers * (until - first)) if until > first else 0.0)
    return shares[0], shares[1]


def _fits(cwd: Path) -> int:
    """The model fits of the folder's last sweep: each trial's folds, and its final fit unless
    it was stopped."""
    [trials] = _last_results(cwd, 1)
    return sum(
        max((len(v) for v in t["folds"].values()), default=0) + (0 if t["stopped"] else 1)
        for t in trials
        if t["status"] in ("FINISHED", "reused")
    )


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    packages = ", ".join(
        f"{p} {version(p)}"
        for p in ("hydra-core", "hydra-joblib-launcher", "mlflow", "scikit-learn", "pandas")
    )
    return (
        f"{CORES} cores ({cpu}), {mem_kb / 2**20:.0f} GiB, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}; {packages}"
    )


def markdown(bench: Bench) -> str:
    lines = [
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {machine()}.",
        "",
        markdown_rows(bench.rows),
    ]
    lines += ["", "| goal | measured | met |", "|---|---|---|"]
    lines += [f"| {g} | {m} | {'yes' if ok else '**no**'} |" for g, m, ok in bench.goals()]
    return "\n".join(lines) + "\n"


def markdown_rows(rows: Sequence[Row]) -> str:
    lines = [
        "| workload | participant | wall s | CPU s | peak MB | x sweeper | note |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        cells = [
            r.workload,
            r.participant,
            f"{r.wall_s:.2f}",
            "" if r.cpu_s is None else f"{r.cpu_s:.1f}",
            "" if r.peak_mb is None else f"{r.peak_mb:.0f}",
            "" if r.vs_sweeper is None else f"{r.vs_sweeper:.2f}",
            r.note,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_outputs(bench: Bench, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with (out / "results.csv").open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(asdict(bench.rows[0])))
        writer.writeheader()
        writer.writerows(asdict(r) for r in bench.rows)
    table = markdown(bench)
    results = out / "RESULTS.md"
    if results.exists() and MARKERS[0] in (text := results.read_text()):
        before, rest = text.split(MARKERS[0], 1)
        after = rest.split(MARKERS[1], 1)[1]
        results.write_text(f"{before}{MARKERS[0]}\n{table}{MARKERS[1]}{after}")
    else:
        (out / "results.md").write_text(table)
    chart(bench, out / "results.png")
    print(table)


def chart(bench: Bench, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = [w for w in ("W1", "W2", "W1 again", "W2 again", "W5") if bench.find(w, SWEEPER)]
    fig, axes = plt.subplots(1, len(workloads), figsize=(3.2 * len(workloads), 4))
    for ax, workload in zip(list(getattr(axes, "flat", [axes])), workloads, strict=True):
        rows = [r for r in bench.rows if r.workload == workload and r.participant != "limit"]
        bars = ax.bar(
            [r.participant for r in rows],
            [r.wall_s for r in rows],
            color=["tab:green" if r.participant == SWEEPER else "tab:gray" for r in rows],
        )
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
        limit = bench.find(workload, "limit")
        if limit is not None:
            ax.axhline(limit.wall_s, color="tab:red", linestyle="--", label="limit")
            ax.legend(fontsize=8)
        ax.set_title(workload)
        ax.set_ylabel("wall time, s")
        ax.tick_params(axis="x", labelrotation=35, labelsize=8)
    fig.suptitle(f"sweeper vs the Hydra launchers and the original scripts ({CORES} cores)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script")
    parser.add_argument("--out", type=Path, default=BENCH, help="where results go (bench/)")
    parser.add_argument("--data-dir", type=Path, default=PROJECT.parent / "shared" / "data")
    parser.add_argument("--only", help="W5,W6: the cross-validated workloads alone")
    args = parser.parse_args(argv)
    measure.become_subreaper()
    with tempfile.TemporaryDirectory(prefix="sweeper-bench-") as scratch:
        # Resolved here: each participant runs in a folder of its own.
        bench = Bench(SMOKE if args.smoke else FULL, args.data_dir.resolve(), Path(scratch))
        if args.only:
            bench.make_template()
            bench.run_cross_validated()
            print(markdown_rows(bench.rows))
            for goal, measured, met in bench.cross_validated_goals():
                print(f"| {goal} | {measured} | {'yes' if met else '**no**'} |")
        else:
            bench.run()
            write_outputs(bench, args.out)
    if bench.failures:
        print(f"bench: {len(bench.failures)} command(s) failed: {bench.failures}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
