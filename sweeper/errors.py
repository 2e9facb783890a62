"""Errors a user can act on: Hydra prints them as one line, without a traceback."""

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
