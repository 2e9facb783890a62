"""Where a sweep's models came from: the tags its MLflow run and its registered versions carry.

    provenance.version          the project's version (its installed metadata)
    provenance.git_commit       the commit it was built from: SWEEPER_GIT_COMMIT (the step
                                image's build argument), else the checkout's HEAD; with
                                provenance.git_dirty when the checkout has changes
    provenance.image            the step image a pod runs (SWEEPER_IMAGE, set on every step)
    provenance.image_digest     its digest, when the image is pinned by one (`…@sha256:…`)
    provenance.definition_hash  SHA-256 of the sweep's definition (the command line, encoded)

Nothing here is secret: an image reference and a commit are what a registry shows anyway.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from importlib import metadata
from pathlib import Path

PREFIX = "provenance."
IMAGE_ENV = "SWEEPER_IMAGE"
COMMIT_ENV = "SWEEPER_GIT_COMMIT"
_CHECKOUT = Path(__file__).resolve().parents[2]  # the project's root, when run from a clone


def provenance(definition: str) -> dict[str, str]:
    """The tags for a sweep whose encoded definition is `definition`."""
    tags = {
        "provenance.version": _version(),
        "provenance.definition_hash": hashlib.sha256(definition.encode()).hexdigest(),
        **_commit(),
    }
    image = os.environ.get(IMAGE_ENV, "")
    if image:
        tags["provenance.image"] = image
        if "@sha256:" in image:
            tags["provenance.image_digest"] = image.split("@", 1)[1]
    return tags


def of(tags: dict[str, str]) -> dict[str, str]:
    """The provenance among a run's tags."""
    return {k: v for k, v in tags.items() if k.startswith(PREFIX)}


def _version() -> str:
    try:
        return metadata.version("sweeper")
    except metadata.PackageNotFoundError:
        return "unknown"


def _commit() -> dict[str, str]:
    given = os.environ.get(COMMIT_ENV, "")
    if given:
        return {"provenance.git_commit": given}
    if not (_CHECKOUT / ".git").exists():  # an installed copy: no checkout to ask
        return {}
    try:
        head = _git("rev-parse", "HEAD")
        changed = _git("status", "--porcelain", "--untracked-files=no", "--", "sweeper", "steps")
    except (OSError, subprocess.SubprocessError):  # no git here: the commit is not known
        return {}
    return {"provenance.git_commit": head, **({"provenance.git_dirty": "true"} if changed else {})}


def _git(*args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=_CHECKOUT, capture_output=True, text=True, timeout=10, check=True
    )
    return done.stdout.strip()
