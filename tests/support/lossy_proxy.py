"""An HTTP proxy on loopback that loses answers: every request reaches the server behind it, but
the answers of chosen POSTs are replaced by a 502 once the server has acted on them, as a
proxy or a load balancer that drops a connection does. The client sees a failure for a write
that was in fact done."""

from __future__ import annotations

import http.client
import random
import threading
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from support.loopback import loopback

_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "host",
}


@dataclass
class Losses:
    """Which answers are lost: `rules` maps (path, a part of the body) to the numbers of the
    matching POSTs to lose (1: the first); `chance`: besides, any API POST's answer at random."""

    rules: dict[tuple[str, bytes], set[int]] = field(default_factory=dict)
    chance: float = 0.0
    seed: int = 1
    seen: Counter[tuple[str, bytes]] = field(default_factory=Counter)
    lost: list[str] = field(default_factory=list)  # "POST path" of each answer lost

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._random = random.Random(self.seed)

    def decide(self, method: str, path: str, body: bytes) -> bool:
        if method != "POST":
            return False
        with self._lock:
            lose = False
            for (wanted, part), numbers in self.rules.items():
                if path == wanted and part in body:
                    self.seen[(wanted, part)] += 1
                    lose = lose or self.seen[(wanted, part)] in numbers
            if not lose and self.chance and path.startswith("/api/"):
                lose = self._random.random() < self.chance
            if lose:
                self.lost.append(f"{method} {path}")
            return lose


@contextmanager
def lossy_proxy(upstream: str, losses: Losses) -> Iterator[str]:
    """A proxy in front of `upstream` (http://host:port) until the block ends; its URL."""
    target = urllib.parse.urlsplit(upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
            connection = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            try:
                connection.request(self.command, self.path, body=body or None, headers=headers)
                reply = connection.getresponse()
                data, status, reply_headers = reply.read(), reply.status, reply.getheaders()
            finally:
                connection.close()
            if losses.decide(self.command, self.path.split("?", 1)[0], body):
                data, status, reply_headers = b"Bad Gateway", 502, [("Content-Type", "text/plain")]
            self.send_response(status)
            for key, value in reply_headers:
                if key.lower() not in _HOP:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = forward

    with loopback(Handler) as url:
        yield url
