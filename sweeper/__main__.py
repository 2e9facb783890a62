import atexit
import os
import sys

# How the command ended, once it ended through sys.exit or by returning; None otherwise.
_exit_code: int | None = None


def _end_at_once() -> None:
    """Registered first, so it runs last: Python has joined the sweep's threads and run every
    other exit handler (logging flushed, MLflow's writes done). Ending here skips tearing down
    scikit-learn, pandas and MLflow module by module, which costs ~0.6 s and writes nothing."""
    if _exit_code is not None:  # an uncaught exception or Ctrl-C ends the ordinary way
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_exit_code)


atexit.register(_end_at_once)

try:
    from sweeper.core.processes import take_ctrl_c

    take_ctrl_c()  # before the imports below, where Python could drop one (see take_ctrl_c)
    from sweeper.executors.local.pool import warm_up_unless_elsewhere

    # First: the workers' imports overlap everything that follows.
    warm_up_unless_elsewhere(sys.argv[1:])

    from sweeper.app import main

    main()
    _exit_code = 0
except SystemExit as stop:  # a message instead of a number has been printed and means 1
    _exit_code = stop.code if isinstance(stop.code, int) else 0 if stop.code is None else 1
    raise
except KeyboardInterrupt:  # during the imports, before the app takes Ctrl-C: nothing ran yet
    print("interrupted", file=sys.stderr)
    _exit_code = 130
    sys.exit(_exit_code)
