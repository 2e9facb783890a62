"""Calls to the Argo Server, with bounded retries of what may pass (connection errors, 5xx)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from hera.exceptions import AlreadyExists, Forbidden, HeraException, Unauthorized
from requests import RequestException

from sweeper.errors import SweeperError
from sweeper.safe_text import first_line

T = TypeVar("T")
ATTEMPTS = 5


class Caller:
    """Calls the server with bounded retries of what may pass (connection errors, 5xx)."""

    def __init__(self, server: str) -> None:
        self.server = server

    def __call__(self, request: Callable[[], T]) -> T:
        for attempt in range(ATTEMPTS):
            try:
                return request()
            except (Unauthorized, Forbidden) as err:
                code = getattr(err, "status_code", "")
                raise SweeperError(
                    f"Argo server {self.server} refused the token (HTTP {code}); "
                    "set ARGO_TOKEN or argo.token to a token allowed in the namespace"
                ) from None
            except AlreadyExists:
                raise
            except (RequestException, HeraException) as err:
                status = getattr(err, "status_code", 500)
                if status < 500 or attempt == ATTEMPTS - 1:
                    raise SweeperError(f"Argo server {self.server}: {first_line(err)}") from None
                time.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")
