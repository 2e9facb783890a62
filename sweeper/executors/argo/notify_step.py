"""An Argo sweep's exit hook with argo.notify: tell a webhook how the sweep ended.

    python -m sweeper.executors.argo.notify_step --plan s3://b/store/sweeps/<id>/plan.json \
        --workflow <workflow name> --status Succeeded --summary Failed

POSTs JSON to the URL in SWEEPER_NOTIFY_URL (from the Secret argo.notify names, key `url`)
when the sweep failed (its workflow's steps, or its summary), or when its summary made a new
champion: its status, the best trial's line, the registry's decision and a link to the sweep's
MLflow run (the summary's notice.json). A successful night that changed nothing sends nothing.
Exits non-zero when the summary failed: as the exit handler's last step, it fails the workflow
as the summary would have.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import requests

from sweeper.core import storage
from sweeper.core.faults import Fault

URL_ENV = "SWEEPER_NOTIFY_URL"


def message(plan_url: str, workflow: str, status: str) -> dict[str, Any] | None:
    """What to send, or None when there is nothing to say."""
    notice_url = plan_url.rsplit("/", 1)[0] + "/" + storage.NOTICE
    try:
        notice: dict[str, Any] = json.loads(storage.read_bytes(notice_url))
    except (FileNotFoundError, Fault):  # no summary (the plan step refused its input), or no
        notice = {}  # store to read it from: the status alone is still worth sending
    if status == "Succeeded" and not notice.get("promoted"):
        return None
    return {"workflow": workflow, "status": status, **notice}


def send(url: str, body: dict[str, Any]) -> None:
    answer = requests.post(url, json=body, timeout=30)
    answer.raise_for_status()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sweeper.executors.argo.notify_step", description=__doc__
    )
    parser.add_argument("--plan", required=True, help="URL of the sweep's plan.json")
    parser.add_argument("--workflow", required=True, help="the workflow's name")
    parser.add_argument("--status", required=True, help="the workflow's: Succeeded, Failed…")
    parser.add_argument("--summary", default="Succeeded", help="the summary step's status")
    args = parser.parse_args(argv)
    # The workflow's status is its steps'; a summary that failed (a trial failed, the store was
    # out) fails the sweep too.
    summary_failed = args.summary != "Succeeded"
    status = "Failed" if summary_failed and args.status == "Succeeded" else args.status
    url = os.environ.get(URL_ENV, "")
    if not url:
        print(
            f"error: {URL_ENV} is not set (the Secret argo.notify names, key url)", file=sys.stderr
        )
        return 1
    body = message(args.plan, args.workflow, status)
    if body is None:
        print(f"workflow {args.workflow} {status}, no new champion: nothing to notify")
        return 0
    # A webhook's URL is its credential (the token in its path): only its host is shown.
    host = urlsplit(url).hostname
    try:
        send(url, body)
    except requests.RequestException as err:  # said, and the hook fails
        code = getattr(err.response, "status_code", None)
        said = f"HTTP {code}" if code else type(err).__name__
        print(f"error: could not notify the webhook at {host}: {said}", file=sys.stderr)
        return 1
    print(f"workflow {args.workflow} {status}: notified")
    return 1 if summary_failed else 0


if __name__ == "__main__":
    sys.exit(main())
