"""Text that is safe to show a person or to write down: no credentials (a URL's user:password@
and its signed query parameters), no control characters (a forged log line, a retitled
terminal), commands quoted for a shell. Standard library only: every layer uses it, errors too.
"""

from __future__ import annotations

import logging
import re
import shlex
from collections.abc import Sequence
from urllib.parse import unquote_plus, urlsplit, urlunsplit

# Query parameters that carry a credential: a signed URL's (AWS SigV4 and v2, Google Cloud
# Storage, Azure SAS `sig`) and a token URL's. Compared without case.
SECRET_PARAMS = frozenset(
    {
        "x-amz-credential",
        "x-amz-signature",
        "x-amz-security-token",
        "awsaccesskeyid",
        "signature",
        "x-goog-credential",
        "x-goog-signature",
        "sig",
        "token",
        "access_token",
        "id_token",
        "refresh_token",
        "api_key",
        "apikey",
        "key",
        "password",
        "secret",
        "client_secret",
        "code",
    }
)
HIDDEN = "REDACTED"


def redact(url: str | None) -> str | None:
    """The URL without its credentials, for logs, records and MLflow: no user:password@, and
    every secret query parameter's value (`SECRET_PARAMS`) replaced by REDACTED. The data is
    still read from the whole URL, in memory."""
    if not url or "://" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:  # not a URL urllib can read (a broken IPv6 host): keep no part of it
        scheme, _, rest = url.partition("://")
        return f"{scheme}://{HIDDEN}" if rest else url
    netloc, query = parts.netloc, parts.query
    if parts.username is not None or parts.password is not None:
        netloc = netloc.rpartition("@")[2]
    if query:
        query = "&".join(_hidden(pair) for pair in query.split("&"))
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def has_secret(url: str | None) -> bool:
    return redact(url) != url


def _hidden(pair: str) -> str:
    name, equals, value = pair.partition("=")
    secret = unquote_plus(name).strip().lower() in SECRET_PARAMS and value and value != HIDDEN
    return f"{name}{equals}{HIDDEN}" if secret else pair


# A URL anywhere in a text: a scheme, then everything up to a space, a quote or a bracket.
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>()\[\]{}]+")


def redact_text(text: str) -> str:
    """The text with every URL in it redacted (`redact`), for files written and lines printed."""
    return _URL.sub(lambda m: redact(m.group(0)) or "", text)


# C0 and C1 control characters and DEL, but for tab and newline where a text may hold them.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_LINE_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str, lines: bool = False) -> str:
    """The text with every control character written as an escape (`\\x1b`, `\\n`), so data
    shown on a terminal cannot move its cursor, retitle it or forge a line; `lines`: newlines
    and tabs are kept (a message of several lines)."""
    pattern = _CONTROL if lines else _LINE_CONTROL
    return pattern.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), text)


def shown(text: str) -> str:
    """What a line printed or a message raised may hold of a text: redacted and printable."""
    return printable(redact_text(text))


def command_line(words: Sequence[str]) -> str:
    """A command to print for people to paste: each word quoted for a POSIX shell."""
    return shlex.join(words)


class ShownRecords(logging.Filter):
    """Every log line as `shown` makes it: a value from the data (a column, a label, a model's
    error) cannot forge a line or send a terminal escape; no URL's credentials."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: logging reports it itself
            return True
        record.msg, record.args = shown(message), None
        return True


def guard_logging() -> None:
    """Filter every handler of the root logger (where Hydra's logging writes) through
    `ShownRecords`, once."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, ShownRecords) for f in handler.filters):
            handler.addFilter(ShownRecords())


# What makes a spreadsheet read a cell as a formula (OWASP's list for CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_cell(value: object) -> object:
    """A CSV cell a spreadsheet shows as text: a text cell that begins like a formula gets a
    leading `'` (OWASP's defence against CSV injection); numbers, and text that is one, stay."""
    if not isinstance(value, str) or not value.startswith(_FORMULA_START):
        return value
    try:
        float(value)
    except ValueError:
        return "'" + value
    return value
