"""sweeper: Hydra sweeps of scikit-learn models, one shared preprocess, parallel trials, MLflow.

    planning/   command line → jobs → plan          (expand, compose, plan, definition)
    executors/  plan → trials run somewhere          (local: pool, worker; argo: compile, submit)
    core/       what every step and executor shares (records, storage, tracking, lifecycle)
    conclusion/ how a sweep's MLflow run ends        (artifacts, best model, registry)
    display/    what people read                     (progress, results table)
    launching/  Hydra's launcher: one sweep across batches, through one executor

See docs/architecture.md.
"""

__version__ = "0.1.0"
