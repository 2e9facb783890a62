"""Kubernetes names and label values from whatever a user called things."""

from __future__ import annotations

import hashlib
import re

_NOT_DNS = re.compile(r"[^a-z0-9-]+")
_NOT_LABEL = re.compile(r"[^A-Za-z0-9._-]+")


def dns_label(text: str, max_length: int = 63) -> str:
    """A DNS-1123 label: lowercase letters, digits and '-', starting and ending alphanumeric.

    Text that had to change gets a short hash of the original, so distinct inputs stay distinct.
    """
    cleaned = _NOT_DNS.sub("-", text.lower()).strip("-")
    cleaned = re.sub(r"-{2,}", "-", cleaned)
    if cleaned == text and 0 < len(cleaned) <= max_length:
        return cleaned
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    head = cleaned[: max_length - len(digest) - 1].strip("-")
    return f"{head}-{digest}" if head else f"x{digest}"


def label_value(text: str) -> str:
    """A label value: at most 63 of [A-Za-z0-9._-], alphanumeric at both ends (or empty)."""
    cleaned = _NOT_LABEL.sub("-", text).strip("-._")
    if cleaned == text and len(cleaned) <= 63:
        return cleaned
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{cleaned[:54].strip('-._')}-{digest}".strip("-")
