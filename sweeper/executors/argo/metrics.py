"""The Prometheus metrics a sweep's workflow emits (Argo prefixes them `argo_workflows_`).

    sweeper_best_score{experiment, metric}            gauge: the sweep's best score
    sweeper_sweep_failed{experiment}                  gauge: 1 when the last sweep failed, else 0
    sweeper_trials_finished_total{experiment}         counter: trials trained to the end
    sweeper_trials_failed_total{experiment}           counter: trials that failed
    sweeper_workflow_duration_seconds{experiment}     gauge, realtime: how long the run has taken

The summary step writes the values as its output parameters (summary_step --outputs); a summary
that could not write them failed, and its defaults say so. "Failed" is the summary's view, which
sees every way a sweep fails (a step, a trial, the store), where the workflow's own `{{status}}`
is its steps' and misses a failed exit handler.
"""

from __future__ import annotations

from hera.workflows import Counter, Gauge, Label, Parameter
from hera.workflows import models as m

# The summary's output parameters, as files it writes; their values when it could not.
SUMMARY_OUTPUTS = {
    "best_score": "NaN",
    "metric": "none",
    "finished": "0",
    "failed": "0",
    "sweep_failed": "1",
}


def summary_outputs(folder: str) -> list[Parameter]:
    return [
        Parameter(name=name, value_from=m.ValueFrom(path=f"{folder}/{name}", default=default))
        for name, default in SUMMARY_OUTPUTS.items()
    ]


def summary_metrics(experiment: str) -> list[Counter | Gauge]:
    """Emitted when the summary ends: the best score (to watch for a drift), whether the sweep
    failed (to alert on), and its trials (for rates). `experiment`: a label value already."""
    labels = [Label(key="experiment", value=experiment)]
    out = "{{outputs.parameters.%s}}"
    return [
        Gauge(
            name="sweeper_best_score",
            help="Best score of the sweep (its ranking metric)",
            labels=[*labels, Label(key="metric", value=out % "metric")],
            realtime=False,
            value=out % "best_score",
        ),
        Gauge(
            name="sweeper_sweep_failed",
            help="1 when the experiment's last sweep failed (a step, a trial or its store), else 0",
            labels=labels,
            realtime=False,
            value=out % "sweep_failed",
        ),
        *(
            Counter(name=f"sweeper_trials_{n}_total", help=h, labels=labels, value=out % n)
            for n, h in (
                ("finished", "Trials of the sweep trained to the end (not those reused)"),
                ("failed", "Trials of the sweep that failed"),
            )
        ),
    ]


def workflow_metrics(experiment: str) -> list[Gauge]:
    labels = [Label(key="experiment", value=experiment)]
    return [
        Gauge(
            name="sweeper_workflow_duration_seconds",
            help="Seconds the sweep's workflow has run",
            labels=labels,
            realtime=True,
            value="{{workflow.duration}}",
        ),
    ]
