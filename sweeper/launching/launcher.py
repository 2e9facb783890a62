"""The launcher's work: a batch of Hydra jobs → a batch of the sweep → its executor → JobReturns.

Behind `hydra/launcher=sweeper` (hydra_plugins/sweeper_plugins). Jobs are composed only when the
executor asks for them (an Argo grid sweep sends its definition, not 10,000 composed jobs); once
composed, Hydra's per-job folders are written in a thread while the trials run, and a user's
`hydra.callbacks` hear `on_job_start` before the batch runs and `on_job_end` with each trial's
JobReturn after it.
"""

from __future__ import annotations

import contextlib
import copy
import json
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.core.utils import JobReturn, JobStatus, configure_log, setup_globals
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

from sweeper.core.evidence import FoldStop
from sweeper.core.metrics import Ranking
from sweeper.core.outcomes import Outcome
from sweeper.core.settings import SearchKind, Settings
from sweeper.errors import SweeperError
from sweeper.executors.base import Batch
from sweeper.launching.study import Study
from sweeper.launching.sweep import SweepSession
from sweeper.planning.compose import Bases, compose_jobs
from sweeper.planning.definition import Definition
from sweeper.planning.expand import as_overrides
from sweeper.planning.plan import Job
from sweeper.safe_text import redact_text

# A streaming optimiser hears of a trial as soon as it ends (its outcome: job index, per-fold
# scores, whether its pruner stopped it; its JobReturn; the metric it is ranked by) and answers
# with the overrides of the trials to run next (none: no more), numbered on from the last.
Told = Callable[[Outcome, JobReturn, str], Sequence[Sequence[str]]]
# A streaming optimiser's pruner for the metric the sweep ranks by (known once data is read).
PrunerFor = Callable[[str], FoldStop]


class Launch:
    """The launcher's state for one invocation: a study's sweep lives across its batches."""

    def __init__(
        self, config: DictConfig, hydra_context: HydraContext, task_function: TaskFunction
    ) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function
        self.study = Study.of(config)
        self.launched = 0
        self.task_name = str(config.hydra.job.name)  # each JobReturn's (read once: ~0.1 ms)
        # Override lines parsed already (Hydra's parser takes ~0.5 ms a line): the model_grid
        # sweeper's expansion leaves its axes' values here, parsed without the parser.
        self.parsed: dict[str, Override] = {}
        # A study's settings are checked now, before the optimiser creates (or resumes) it.
        self.settings = Settings.of(config)
        self.study_sweep = None
        if self.study is not None and self.settings.search.kind == SearchKind.halving:
            raise SweeperError(
                f"search=halving halves a grid; hydra/sweeper={self.study.optimiser} chooses its "
                "own trials: use one or the other"
            )
        if self.study is not None:
            if self.settings.eval.metric != "auto":  # else known once the data is read
                self.study.check(self.settings.ranking())
            self.study_sweep = SweepSession(self.settings, self.study)

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> list[JobReturn]:
        config = self.config
        setup_globals()
        configure_log(config.hydra.hydra_logging, config.hydra.verbose)
        sweep = self.study_sweep or SweepSession(self.settings)
        self.launched += len(job_overrides)
        composing = _Composing(self, job_overrides, initial_job_idx)
        last = self.study is None or self.launched >= self.study.budget
        batch = Batch(self._definition(job_overrides), composing.jobs, last=last)
        try:
            outcomes = sweep.run(batch)
        except SweeperError:  # refused input: its sweep leaves no folders behind
            composing.discard()
            raise
        if outcomes is None:  # the trials ran elsewhere; no job of them ran here
            return []
        return composing.returns(outcomes, sweep.result.ranking)

    @property
    def streams(self) -> bool:
        """Whether an optimiser may ask for trials one at a time as workers free up (`stream`):
        the local pool; Argo runs its trials in batches, a workflow each."""
        return self.study_sweep is not None and self.study_sweep.streams

    def stream(
        self,
        first: Sequence[Sequence[str]],
        initial_job_idx: int,
        told: Told,
        pruning: PrunerFor | None = None,
    ) -> int:
        """An optimiser without batch barriers: `first` are its first trials (one per worker);
        each trial's outcome and JobReturn go to `told` as soon as the trial ends, which gives
        the trials to run next (none: it asks for no more). One sweep, one batch that grows;
        how many trials ran in all. `pruning`: its pruner for the ranking metric, asked after
        each fold of a trial."""
        assert self.study is not None and self.study_sweep is not None
        sweep, ranking_of = self.study_sweep, lambda: sweep.result.ranking
        composing: dict[int, _Composing] = {}  # job index → its jobs' composing
        following = initial_job_idx
        bases: Bases = {}  # trials of one model and data share a composition
        checked: list[bool] = []

        def batch(overrides: Sequence[Sequence[str]], first_index: int) -> Batch:
            nonlocal following
            jobs = _Composing(self, overrides, first_index, bases)
            composing.update({first_index + i: jobs for i in range(len(overrides))})
            following = first_index + len(overrides)
            definition = self._definition(overrides)
            return Batch(definition, jobs.jobs, more=more, expected=budget, pruning=pruning)

        def more(outcome: Outcome) -> Batch | None:
            ranking = ranking_of()
            if not checked:  # the optimiser's direction, once the data's task is known
                assert self.study is not None
                self.study.check(ranking)
                checked.append(True)
            ret = composing.pop(outcome.trial.index).returned(outcome, ranking)
            wanted = told(outcome, ret, ranking.metric)
            return batch(wanted, following) if wanted else None

        budget = self.study.budget
        try:
            sweep.run(batch(first, initial_job_idx))
        except SweeperError:  # refused input: its sweep leaves no folders behind
            for jobs in set(composing.values()):
                jobs.discard()
            raise
        return following - initial_job_idx

    def _definition(self, job_overrides: Sequence[Sequence[str]]) -> Definition:
        if self.study is not None:
            jobs = tuple(tuple(job) for job in job_overrides)
            return Definition(jobs=jobs, name_keys=self.study.name_keys)
        # One grid batch is the whole sweep: as the model_grid sweeper expanded it.
        params = self.config.hydra.sweeper.get("params") or {}
        overrides = (*as_overrides(params), *self.config.hydra.overrides.task)
        return Definition(overrides=tuple(overrides), multirun=True)


class _Composing:
    """A batch's jobs, composed on first use; their folders and callbacks follow from them."""

    def __init__(
        self,
        launch: Launch,
        overrides: Sequence[Sequence[str]],
        first: int,
        bases: Bases | None = None,
    ) -> None:
        """`bases`: compositions to use again (a streamed study's, across its trials)."""
        self.launch, self.overrides, self.first, self.bases = launch, overrides, first, bases
        self.composed: list[Job] | None = None
        # What the JobReturns are made from: the composed jobs, or (a sweep past
        # sweep.job_folders trials, no callbacks) each one's number and overrides alone, so that
        # 100,000 Jobs and their parsed values are not held while the trials run.
        self.launched: Sequence[Job | _Launched] | None = None
        self.hydra_cfg: DictConfig | None = None
        self.folders: Future[list[Path]] | None = None
        self.made: Path | None = None  # the sweep's folder, when this batch made it

    def jobs(self) -> list[Job]:
        if self.composed is None:
            assert self.launched is None, "a batch is planned once: its jobs are not kept"
            config, loader = self.launch.config, self.launch.hydra_context.config_loader
            self.composed, self.hydra_cfg = compose_jobs(
                self.overrides,
                compose=lambda overrides: loader.load_sweep_config(config, overrides),
                parser=OverridesParser.create(config_loader=loader),
                first_index=self.first,
                parsed=self.launch.parsed,
                bases=self.bases,
            )
            sweep_dir = Path(config.hydra.sweep.dir).resolve()
            self.made = None if sweep_dir.exists() else sweep_dir
            writer = ThreadPoolExecutor(1)  # only for a batch whose jobs are composed here
            self.folders = writer.submit(
                write_job_dirs, sweep_dir, self.composed, config, self._detailed
            )
            writer.shutdown(wait=False)  # the write goes on; `returns` waits for it
            callbacks = self.launch.hydra_context.callbacks
            for job in self.composed if callbacks.callbacks else ():
                callbacks.on_job_start(
                    config=self._job_config(job), task_function=self.launch.task_function
                )
            self.launched = self.composed
            if not self._detailed and not callbacks.callbacks:
                self.launched = [_Launched(job.index, job.overrides) for job in self.composed]
                if self.launch.study is None:  # a grid is one batch: its values are parsed
                    self.launch.parsed.clear()
                jobs, self.composed = self.composed, None
                return jobs  # for the plan; not kept here
        return self.composed

    def discard(self) -> None:
        """Remove the folders this batch made (the sweep's, and parents it left empty)."""
        if self.folders is None or self.made is None:
            return
        with contextlib.suppress(Exception):  # whatever stopped the writer, nothing to remove
            self.folders.result()
        shutil.rmtree(self.made, ignore_errors=True)
        cwd = Path.cwd().resolve()
        for parent in self.made.parents:  # `multirun/<date>/`, `multirun/`, if left empty
            if parent == cwd or not parent.is_relative_to(cwd) or any(parent.iterdir()):
                break
            parent.rmdir()

    def returns(self, ran: Sequence[Outcome], ranking: Ranking) -> list[JobReturn]:
        outcomes = {o.trial.index: o for o in ran}
        assert self.folders is not None
        folders = self.folders.result()
        jobs = self._launched()
        return [
            self._returned(job, folder, outcomes[job.index], ranking)
            for job, folder in zip(jobs, folders, strict=True)
        ]

    def returned(self, outcome: Outcome, ranking: Ranking) -> JobReturn:
        """One job's JobReturn (a streamed trial's, as soon as it ends)."""
        jobs = self._launched()
        assert self.folders is not None
        position = next(i for i, job in enumerate(jobs) if job.index == outcome.trial.index)
        return self._returned(jobs[position], self.folders.result()[position], outcome, ranking)

    def _launched(self) -> Sequence[Job | _Launched]:
        if self.launched is None:
            self.jobs()
        assert self.launched is not None
        return self.launched

    def _returned(
        self, job: Job | _Launched, folder: Path, outcome: Outcome, ranking: Ranking
    ) -> JobReturn:
        """The JobReturn Hydra's launchers give for a job; callbacks hear of it."""
        assert self.hydra_cfg is not None
        ret = JobReturn(
            overrides=list(job.overrides),
            # A job's composed config costs milliseconds and kilobytes: past sweep.job_folders
            # trials only a callback gets it (on_job_end's `config`), the return has none.
            cfg=job.cfg if isinstance(job, Job) and self._detailed else None,
            hydra_cfg=self.hydra_cfg,
            working_dir=str(folder),
            task_name=self.launch.task_name,
        )
        if outcome.ok:
            # What an optimiser reads back: the value the trial is ranked by.
            ret.status, ret.return_value = JobStatus.COMPLETED, outcome.metrics.get(ranking.key)
        else:
            ret.status = JobStatus.FAILED
            ret.return_value = SweeperError(f"trial '{outcome.trial.name}': {outcome.error}")
        callbacks = self.launch.hydra_context.callbacks
        if callbacks.callbacks:
            assert isinstance(job, Job), "a batch with callbacks keeps its jobs"
            callbacks.on_job_end(config=self._job_config(job), job_return=ret)
        return ret

    @property
    def _detailed(self) -> bool:
        """Whether each job gets Hydra's folder and its composed config in its JobReturn: in a
        sweep of up to sweep.job_folders trials (this batch's, as Hydra launches it)."""
        return len(self.overrides) <= self.launch.settings.sweep.job_folders

    def _job_config(self, job: Job) -> DictConfig:
        """The job's config with its hydra node, as Hydra's own launchers give callbacks (built
        only when a callback is configured)."""
        assert self.hydra_cfg is not None
        hydra_cfg = copy.deepcopy(self.hydra_cfg)
        with open_dict(hydra_cfg):
            hydra_cfg.job.num = job.index
            hydra_cfg.overrides.task = list(job.overrides)
        config = copy.deepcopy(job.cfg)
        with open_dict(config):
            config.hydra = hydra_cfg
        return config


@dataclass(frozen=True, slots=True)
class _Launched:
    """A job once its trial is planned, as its JobReturn needs it: its number and overrides."""

    index: int
    overrides: tuple[str, ...]


def write_job_dirs(
    sweep_dir: Path, jobs: Sequence[Job], config: DictConfig, folders: bool = True
) -> list[Path]:
    """The sweep's `multirun.yaml` (once) and Hydra's per-job output folders with
    `.hydra/config.yaml` and `.hydra/overrides.yaml`; without `folders` (a sweep past
    sweep.job_folders trials), one line per job in `jobs.jsonl` instead: its number and its
    overrides. Each job's working folder: its own, else the sweep's.

    The same YAML Hydra writes (unresolved, keys in config order), through libyaml's emitter:
    OmegaConf's pure-Python one takes milliseconds per job; no URL's credentials in any."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    if not (sweep_dir / "multirun.yaml").exists():
        (sweep_dir / "multirun.yaml").write_text(redact_text(OmegaConf.to_yaml(config)))
    if not folders:
        with (sweep_dir / "jobs.jsonl").open("a") as lines:
            for job in jobs:
                overrides = [redact_text(o) for o in job.overrides]
                lines.write(json.dumps({"num": job.index, "overrides": overrides}) + "\n")
        return [sweep_dir] * len(jobs)
    dirs = []
    for job in jobs:
        hydra_dir = sweep_dir / str(job.index) / ".hydra"
        hydra_dir.mkdir(parents=True, exist_ok=True)
        config_yaml = _yaml(OmegaConf.to_container(job.cfg))
        (hydra_dir / "config.yaml").write_text(redact_text(config_yaml))
        (hydra_dir / "overrides.yaml").write_text(redact_text(_yaml(list(job.overrides))))
        dirs.append(hydra_dir.parent)
    return dirs


def _yaml(value: object) -> str:
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(value, Dumper=dumper, sort_keys=False, allow_unicode=True)


def run_one(cfg: DictConfig) -> float | None:
    """`python -m sweeper` without `-m`: the composed config is a sweep of one trial."""
    from hydra.core.hydra_config import HydraConfig

    hydra_cfg = HydraConfig.get()
    # Hydra wrote the run's .hydra/ files before calling this: as written, without credentials.
    for written in Path(hydra_cfg.runtime.output_dir, hydra_cfg.output_subdir or ".hydra").glob(
        "*.yaml"
    ):
        text = written.read_text()
        if redact_text(text) != text:
            written.write_text(redact_text(text))
    overrides = tuple(hydra_cfg.overrides.task)
    job = Job(0, overrides, cfg, str(hydra_cfg.runtime.choices["model"]))
    sweep = SweepSession(Settings.of(cfg))
    outcomes = sweep.run(Batch(Definition(overrides=overrides), lambda: [job]))
    ranking = sweep.result.ranking
    return outcomes[0].metrics.get(ranking.key) if outcomes and outcomes[0].ok else None
