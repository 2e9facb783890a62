"""A webhook receiver on loopback: what argo.notify's URL points at in tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from support.loopback import loopback


@dataclass
class Webhook:
    url: str
    received: list[dict[str, Any]] = field(default_factory=list)  # each POST's JSON body


@contextmanager
def webhook() -> Iterator[Webhook]:
    hook = Webhook("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            hook.received.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    with loopback(Handler) as url:
        hook.url = f"{url}/hooks/T0K3N"  # a webhook's token is in its path
        yield hook
