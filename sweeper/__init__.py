"""sweeper: Hydra sweeps of scikit-learn models, one shared preprocess, parallel trials, MLflow."""

__version__ = "0.1.0"

# Command lines that only print something, or hand the sweep to Argo: no local workers.
_NO_LOCAL_RUN = {"--help", "-h", "--hydra-help", "--info", "-i", "--cfg", "-c", "--version"}


def start_workers_early(args: list[str]) -> None:
    """Start the local workers' fork server now, unless this command line runs no trials here:
    its imports then overlap Hydra's start and the sweep's composition. Calling it again is free."""
    if _NO_LOCAL_RUN.isdisjoint(args) and "backend=argo" not in args:
        from sweeper.pool import warm_up

        warm_up()
