"""Errors a user can act on: Hydra prints them as one line, without a traceback."""

from hydra.errors import CompactHydraException


class SweeperError(CompactHydraException):
    """A problem with the sweep's input or settings; the message names it and the value."""


class DataError(SweeperError):
    """The input data cannot be used as configured (missing file or column, text target…)."""
