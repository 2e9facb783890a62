"""backend=argo: a sweep as an Argo Workflow (or a nightly CronWorkflow), built with Hera.

A grid sweep is one workflow whose first pod plans it from the definition (the manifest carries
overrides, not trials) and whose exit handler concludes it; this process renders or submits it,
and when it watches it, prints the results from MLflow. An optimiser's batch is a workflow of its
own listing its trials (`--jobs`); its results come back through the `results.json` its summary
pod writes, so the optimiser gets each trial's score before it asks for the next batch.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from sweeper.core import storage
from sweeper.core.outcomes import Outcome, SweepResult
from sweeper.core.records import Status
from sweeper.core.settings import Settings
from sweeper.errors import SweeperError
from sweeper.executors.argo import events, rbac
from sweeper.executors.argo.checks import check_reachable
from sweeper.executors.argo.compile import compile_sweep, compile_template
from sweeper.executors.argo.names import label_value
from sweeper.executors.base import Batch, Sweep
from sweeper.planning.definition import Definition
from sweeper.safe_text import redact

if TYPE_CHECKING:
    from hera.workflows import CronWorkflow, WorkflowTemplate


class ArgoExecutor:
    streams = False  # an optimiser's trials come in batches: a workflow each

    def __init__(self) -> None:
        self.status = 0
        self.workflows: list[str] = []  # an optimiser's batches: a workflow (and sweep) each

    def check(self, sweep: Sweep) -> None:
        if sweep.optimiser is not None:  # called before the optimiser creates its study
            _check_batches(sweep)
        check_reachable(sweep.settings)

    def open(self, sweep: Sweep, first: Batch) -> None:
        """Nothing to open here: each workflow's plan pod opens its sweep's run."""

    def run(self, sweep: Sweep, batch: Batch) -> list[Outcome] | None:
        if batch.definition.jobs is None:
            self.status = _run_definition(sweep, batch.definition)
            return None
        return self._run_batch(sweep, batch)

    def close(self, sweep: Sweep, status: Status | None) -> int:
        if self.workflows:
            result = sweep.result
            best = result.best
            shown = f"best {best.line()}" if best else "no trial finished"
            workflows = "workflow" if len(self.workflows) == 1 else "workflows"
            print(
                f"Study: {len(result.outcomes)} trials in {len(self.workflows)} {workflows} "
                f"({', '.join(self.workflows)}); {shown}",
                flush=True,
            )
            return 0 if status is None and result.n_failed == 0 else 1
        return self.status or (0 if status is None else 1)

    def _run_batch(self, sweep: Sweep, batch: Batch) -> list[Outcome]:
        """Submit one optimiser's batch as a workflow, wait for it, read its results back."""
        from sweeper.executors.argo.submit import submit

        plan = sweep.plan(batch)
        # Each workflow counts its own trials and models; these tie it to the study.
        params = {k: v for k, v in sweep.result.plan.sweep_params.items() if k.startswith("study")}
        params.update(
            {"study.invocation": sweep.sweep_id, "study.batch": str(len(self.workflows) + 1)}
        )
        definition = dataclasses.replace(batch.definition, sweep_params=params)
        workflow = compile_sweep(definition, sweep.settings)
        assert workflow.name is not None
        status = submit(workflow, sweep.settings.argo)
        self.workflows.append(workflow.name)
        batch.ran_as = workflow.name
        url = storage.sweep_url(plan.settings.storage.root, workflow.name, storage.RESULTS)
        try:
            text = storage.read_bytes(url)
        except FileNotFoundError:
            phase = "failed" if status else "succeeded"
            raise SweeperError(
                f"workflow {workflow.name} {phase} without writing its results ({url})"
            ) from None
        # The pods number the batch's trials from 0, in the order of the manifest.
        numbered = dataclasses.replace(
            plan, trials=tuple(dataclasses.replace(t, index=i) for i, t in enumerate(plan.trials))
        )
        recorded = {o.trial.index: o for o in SweepResult.from_json(text, numbered).outcomes}
        outcomes = []
        for position, trial in enumerate(plan.trials):
            found = recorded.get(position)
            outcomes.append(
                dataclasses.replace(found, trial=trial)
                if found is not None
                else Outcome.not_run(trial, f"not in the results of {workflow.name}")
            )
        sweep.result.outcomes.extend(outcomes)
        return outcomes


def _run_definition(sweep: Sweep, definition: Definition) -> int:
    """Render, or submit (and watch) the workflow of a whole sweep; the exit status."""
    settings, argo = sweep.settings, sweep.settings.argo
    if argo.template or argo.trigger:
        return _run_template(definition, settings)
    workflow = compile_sweep(definition, settings)
    accounts = rbac.rbac(workflow.name or "", argo) if argo.rbac else []
    if argo.render_to:
        kind = type(workflow).__name__
        how = (
            "kubectl apply -f it"  # argo submit and argo cron create take one object
            if accounts
            else "argo cron create it, or kubectl apply -f it"
            if kind == "CronWorkflow"
            else "argo submit it, or kubectl create -f it"
        )
        _render(argo.render_to, [workflow.to_dict(), *accounts], how)
        return 0
    if accounts:
        raise SweeperError(
            "argo.rbac makes objects for kubectl apply: give argo.render_to=<file> and apply it"
        )
    from sweeper.executors.argo.submit import submit

    status = submit(workflow, argo)
    if argo.wait and not argo.schedule:
        assert workflow.name is not None
        _show_results(settings.mlflow.tracking_uri, settings.mlflow.experiment, workflow.name)
    return status


def _run_template(definition: Definition, settings: Settings) -> int:
    """Create or update the sweep's WorkflowTemplate (and, with argo.schedule, its CronWorkflow)
    on the Argo Server, or render them to one YAML file, a document each, with argo.trigger's
    EventSource and Sensor and argo.rbac's accounts (for `kubectl apply -f`: render only)."""
    argo = settings.argo
    template, cron = compile_template(definition, settings)
    made: list[WorkflowTemplate | CronWorkflow] = [template] if cron is None else [template, cron]
    assert template.name is not None
    experiment = label_value(settings.mlflow.experiment)
    more = []
    if argo.trigger:
        more += [
            events.event_source(template.name, argo, experiment),
            events.sensor(template.name, argo, experiment),
        ]
    if argo.rbac:
        more += rbac.rbac(template.name, argo)
    if not argo.render_to:
        if more:
            raise SweeperError(
                "argo.trigger and argo.rbac make objects for kubectl apply: give "
                "argo.render_to=<file> and apply it"
            )
        from sweeper.executors.argo.submit import apply

        return apply(made, argo)
    _render(argo.render_to, [one.to_dict() for one in made] + more, "kubectl apply -f it")
    return 0


def _render(to: str, documents: list[dict[str, Any]], how: str) -> None:
    """The objects to one YAML file, a document each, written whole or not at all."""
    path = Path(to).resolve()
    text = "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in documents)
    storage.write_bytes_atomic(str(path), text.encode())
    said = ", ".join(f"{d['kind']} {d['metadata']['name']}" for d in documents)
    print(f"{said} written to {path} ({how})")


def _show_results(tracking_uri: str, experiment: str, sweep_id: str) -> None:
    """The watched workflow's table and compare link, read from MLflow when this machine reaches
    the tracking server (pods reach it by a cluster address that a laptop often cannot)."""
    import requests

    from sweeper.display.table import print_report
    from sweeper.report import load_report

    later = (
        f"python -m sweeper.report {sweep_id} --tracking-uri {redact(tracking_uri)} "
        f"--experiment {experiment}"
    )
    try:
        requests.get(f"{tracking_uri.rstrip('/')}/health", timeout=3).raise_for_status()
        print_report(load_report(tracking_uri, experiment, sweep_id))
    except requests.RequestException as err:
        print(f"MLflow is not reachable from here ({type(err).__name__}); the results: {later}")
    except SweeperError as err:
        print(f"{err}; the results, later: {later}")


def _check_batches(sweep: Sweep) -> None:
    """An optimiser needs each batch's results before it asks for the next one."""
    argo, name = sweep.settings.argo, sweep.optimiser
    chosen = {
        "argo.render_to": argo.render_to,
        "argo.schedule": argo.schedule,
        "argo.template": argo.template,
        "argo.trigger": argo.trigger,
    }
    for setting, value in chosen.items():
        if value:
            raise SweeperError(
                f"{setting} cannot feed trial results back to an optimising sweeper "
                f"(hydra/sweeper={name}); leave it out to submit and watch each batch"
            )
    if not argo.wait:
        raise SweeperError(
            f"argo.wait=false cannot feed trial results back to an optimising sweeper "
            f"(hydra/sweeper={name}); each batch's workflow is watched until it ends"
        )
    if not argo.server:
        raise SweeperError(f"backend=argo with hydra/sweeper={name} needs argo.server=https://…")
