"""Errors a user can act on, said as one line, without a traceback."""

import contextlib
import sys
from collections.abc import Iterator

from hydra.errors import CompactHydraException

from sweeper.safe_text import shown


class SweeperError(CompactHydraException):
    """A problem with the sweep's input or settings; the message names it and the value. What
    it quotes of the input is shown as `safe_text.shown` makes it: no credentials, no control
    characters."""

    def __init__(self, message: object = "") -> None:
        super().__init__(shown(str(message)))


class DataError(SweeperError):
    """The input data cannot be used as configured (missing file or column, text target…)."""


@contextlib.contextmanager
def said_in_one_line() -> Iterator[None]:
    """A SweeperError ends the command with its one line on stderr and exit status 1: said here,
    at the plugins' and the task's boundary, not by Hydra's report, which adds a hint about a
    stack trace that would help no one act on it."""
    try:
        yield
    except SweeperError as err:
        print(err, file=sys.stderr, flush=True)
        raise SystemExit(1) from None
