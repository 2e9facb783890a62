"""Text that is safe to show a person or to write down: no credentials (a URL's user:password@
and its signed query parameters), no control characters (a forged log line, a retitled
terminal), commands quoted for a shell. Standard library only: every layer uses it, errors too.
"""

from __future__ import annotations

import logging
import re
import shlex
from collections.abc import Sequence
from typing import Any

HIDDEN = "REDACTED"
# A URL's user:password@ (or user@): after its scheme, up to the last @ of its authority.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s]*@")
# A query (or fragment) parameter that carries a credential, by its name: a signed URL's (AWS
# SigV4 and v2, Google Cloud Storage, Azure SAS `sig`) and a token URL's. Names are matched
# without case, on their parts (`X-Amz-Security-Token`, `client_secret`, `api-key`, …).
_SECRET_NAME = (
    r"(?:[\w.%-]*(?:secret|token|passw|pwd|signature|credential|auth|api[_-]?key|"
    r"access[_-]?key|private[_-]?key|session)[\w.%-]*|sig|key|code)"
)
_SECRET_PARAM = re.compile(
    rf"(?P<name>[?&;#]{_SECRET_NAME}=)(?P<value>[^&;#\s'\"<>]+)", re.IGNORECASE
)


def redact_text(text: str) -> str:
    """The text with every URL's credentials replaced, for files written and lines printed: no
    user:password@, and every secret query parameter's value REDACTED (the parameter itself
    stays, so a reader sees that the URL was signed). The data is still read from the whole
    URL, in memory."""
    if "@" in text:  # (checked first: most texts hold no URL, and a plan names 100,000 trials)
        text = _USERINFO.sub(r"\g<scheme>", text)
    if any(mark in text for mark in "?&;#"):
        text = _SECRET_PARAM.sub(lambda m: f"{m.group('name')}{HIDDEN}", text)
    return text


def redact(url: str | None) -> str | None:
    """`redact_text` of a URL (None stays None)."""
    return url if not url else redact_text(url)


def has_userinfo(text: str) -> bool:
    """Whether a URL in the text carries a user:password@ (or user@)."""
    return _USERINFO.search(text) is not None


# C0 and C1 control characters and DEL, newline and tab included: a line shown is one line.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """The text with every control character written as an escape (`\\x1b`, `\\n`), so data
    shown on a terminal cannot move its cursor, retitle it or forge a line."""
    return _CONTROL.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), text)


def shown(text: str) -> str:
    """What a line printed or a message raised may hold of a text: redacted and printable."""
    return printable(redact_text(text))


def command_line(words: Sequence[str]) -> str:
    """A command to print for people to paste: each word quoted for a POSIX shell."""
    return shlex.join(words)


def guard_logging() -> None:
    """Every log record of this process, whichever logger and handler writes it, as `shown`
    makes its message: a value from the data (a column, a label, a model's error) cannot forge
    a line or send a terminal escape, and no URL's credentials are logged. Set once, on the
    record factory, so that handlers Hydra configures later are covered too."""
    made = logging.getLogRecordFactory()
    if getattr(made, "shown", False):
        return

    def record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        made_record = made(*args, **kwargs)
        try:
            message = made_record.getMessage()
        except Exception:  # a malformed call: logging reports it itself
            return made_record
        made_record.msg, made_record.args = shown(message), None
        if made_record.exc_info:  # a traceback quotes values too: formatted here, redacted
            formatted = logging.Formatter().formatException(made_record.exc_info)
            made_record.exc_text = "\n".join(map(shown, formatted.splitlines()))
        return made_record

    record.shown = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(record)


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


def first_line(err: BaseException) -> str:
    """An error said in one line: its message's first line, or its type when it has none."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
