"""What a sweep must be for Argo: reachable from every pod, and nothing in its manifest that a
manifest must not carry (credentials, paths only this machine can read)."""

from __future__ import annotations

import re

from sweeper.core import overrides, storage
from sweeper.core.settings import Settings
from sweeper.errors import SweeperError
from sweeper.planning.definition import Definition
from sweeper.safe_text import has_userinfo, redact, redact_text


def check_reachable(settings: Settings) -> None:
    """Pods need storage and tracking they can reach over the network."""
    root, uri = settings.storage.root, settings.mlflow.tracking_uri
    if storage.is_local(root):
        raise SweeperError(
            f"storage.root={root} is a local folder; backend=argo needs a URL every pod can "
            "reach, e.g. storage.root=s3://bucket/sweeps"
        )
    if not uri.startswith(("http://", "https://", "databricks")):
        raise SweeperError(
            f"mlflow.tracking_uri={uri} is not a tracking server; backend=argo needs one every "
            "pod can reach, e.g. mlflow.tracking_uri=http://mlflow.ml.svc:5000"
        )
    if "{{" in root:  # it is in the manifest's paths, where Argo would read it as a variable
        raise SweeperError(f"storage.root={root} holds '{{{{': not a path Argo can carry")
    if redact(uri) != uri:  # a password would be written into the manifest
        raise SweeperError(
            f"mlflow.tracking_uri={redact(uri)} holds credentials, which a manifest "
            "would carry in plain text: give them as MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD in a Secret named in argo.secrets"
        )
    check_environment(settings)


# Environment names that hold a credential (AWS_SECRET_ACCESS_KEY, MLFLOW_TRACKING_TOKEN,
# GITHUB_TOKEN, DB_PASSWORD, …): a plain `argo.env` value is written into the manifest.
_SECRET_NAME = re.compile(
    r"(^|_)(SECRET|PASSWORD|PASSWD|PWD|TOKEN|CREDENTIALS?|PRIVATE|SESSION|SIGNATURE|APIKEY|AUTH)"
    r"(_|$)|ACCESS_KEY|API_KEY|PRIVATE_KEY"
)


def check_environment(settings: Settings) -> None:
    """`argo.env` is written into the manifest as it is: no credential may be in it."""
    for name, value in settings.argo.environment.items():
        if _SECRET_NAME.search(name.upper()) or redact_text(value) != value:
            raise SweeperError(
                f"argo.env.{name} looks like a credential, which the manifest would carry in "
                "plain text: put it in a Kubernetes Secret and name the Secret in argo.secrets "
                "(its keys become the pods' environment)"
            )


def check_definition(definition: Definition) -> None:
    """A `data.path` on the command line that only this machine can read, or any value holding
    a URL's credentials."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    lines = [*definition.overrides, *(o for job in definition.jobs or () for o in job)]
    for line in lines:
        if has_userinfo(line):  # the manifest would carry them
            raise SweeperError(
                f"{redact_text(line)}: a URL with user:password@, which the manifest "
                "would carry in plain text; give the pods credentials in a Secret named in "
                "argo.secrets (for s3://, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
            )
        if redact_text(line) != line:  # a signed URL: it expires, and is a credential
            raise SweeperError(
                f"{redact_text(line)}: a signed URL, which the manifest would carry in "
                "plain text and which expires before a nightly run; give the pods a URL without "
                "a signature and credentials in a Secret named in argo.secrets"
            )
        if overrides.key(line) != "data.path":
            continue
        override = parser.parse_override(line)
        values = (
            list(override.sweep_string_iterator())
            if override.is_sweep_override()
            else [override.value()]
        )
        for value in values:
            if isinstance(value, str) and storage.is_local(value):
                raise SweeperError(
                    f"data.path={value} is a local file; backend=argo needs a URL every pod "
                    "can reach, e.g. data.path=s3://bucket/data.csv"
                )
