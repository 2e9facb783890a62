"""`python -m sweeper`: the Hydra application.

With `-m` the project's sweeper and launcher plugins take over (`hydra_plugins/sweeper_plugins`);
without it, the composed config is a sweep of one trial. Either way the trials go through
`sweeper.launching` to the executor of the configured backend.
"""

from __future__ import annotations

import signal
import sys

import hydra
from omegaconf import DictConfig

from sweeper.core.processes import raise_if_ctrl_c, take_ctrl_c
from sweeper.core.records import Status
from sweeper.core.settings import config_dir, register_schemas

__all__ = ["config_dir", "main", "run_single"]

register_schemas()  # before Hydra composes `conf/config.yaml`, which names them


@hydra.main(config_path=config_dir(), config_name="config", version_base="1.3")
def run_single(cfg: DictConfig) -> float | None:
    from sweeper.errors import said_in_one_line
    from sweeper.launching.launcher import run_one

    with said_in_one_line():
        return run_one(cfg)


def main() -> None:
    from sweeper.executors.local.pool import warm_up_unless_elsewhere
    from sweeper.planning.expand import defer_model_values, path_in_choices

    take_ctrl_c()  # for the `sweeper` script; `python -m sweeper` took it first thing
    warm_up_unless_elsewhere(sys.argv[1:])  # for the `sweeper` script; `python -m sweeper` did it
    refused = path_in_choices(sys.argv[1:])
    if refused:
        print(refused, file=sys.stderr)
        sys.exit(1)
    sys.argv[1:] = defer_model_values(multirun_flag_last(sys.argv[1:]))
    # SIGTERM (kill, a scheduler's stop) ends a sweep as Ctrl-C does: cleanly.
    signal.signal(signal.SIGTERM, _terminate)
    # An optimiser's sweep run stays open between its batches: end it however the run ends.
    try:
        raise_if_ctrl_c()  # pressed while this loaded, and lost there
        run_single()
    except KeyboardInterrupt as stop:
        _end_sweeps(Status.KILLED)
        terminated = isinstance(stop, Terminated)
        print("terminated" if terminated else "interrupted", file=sys.stderr)
        sys.exit(128 + (signal.SIGTERM if terminated else signal.SIGINT))
    except SystemExit as stop:
        _end_sweeps(Status.FAILED if stop.code else None)
        raise
    sys.exit(_end_sweeps(None))


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C's KeyboardInterrupt would be, so it stops the same way."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


def multirun_flag_last(argv: list[str]) -> list[str]:
    """`… -m backend=argo`: overrides after `-m` are what users type; Hydra's argparse takes
    overrides only before its flags, so the flag (which takes no value) moves to the end."""
    flags = [a for a in argv if a in ("-m", "--multirun")]
    return [a for a in argv if a not in flags] + flags


def _end_sweeps(status: Status | None) -> int:
    """End the sweeps still open (sweeper.launching.sweep.end_open_sweeps); the exit status of
    this process's sweeps. `--help` and other commands that run none do not import that module."""
    sweeps = sys.modules.get("sweeper.launching.sweep")
    if sweeps is None:
        return 0
    sweeps.end_open_sweeps(status)
    return int(sweeps.exit_status())


if __name__ == "__main__":
    main()
