"""Runs an Argo Events Sensor the way its pod does, for the events of an EventSource.

An event reaches the Sensor's dependency that names its EventSource and event and whose data
filters it passes (a `string` filter: any of its values, a regular expression, found in the
value at `path`). Each trigger's `argoWorkflow` then takes a copy of its Workflow, sets each
parameter's `dest` (a dotted path, numbers indexing lists) to the value at its `src.dataKey` in
the event's data, and submits it: here, to the Argo Server stand-in, as a create request.
Paths are the subset of gjson/sjson the sensors here use: dotted keys and list indexes.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote_plus


@dataclass
class SensorRunner:
    sensor: dict[str, Any]
    submit: Callable[[dict[str, Any]], str]  # a Workflow → the name it was created as
    submitted: list[str] = field(default_factory=list)

    def deliver(self, source: str, event: str, data: dict[str, Any]) -> list[str]:
        """The workflows the event starts (none when no dependency takes it)."""
        spec = self.sensor["spec"]
        taken = [
            d
            for d in spec["dependencies"]
            if (d["eventSourceName"], d["eventName"]) == (source, event) and _passes(d, data)
        ]
        names = []
        for dependency in taken:
            for trigger in spec["triggers"]:
                action = trigger["template"]["argoWorkflow"]
                assert action.get("operation", "submit") == "submit"
                workflow = copy.deepcopy(action["source"]["resource"])
                for parameter in action.get("parameters", []):
                    src = parameter["src"]
                    assert src["dependencyName"] == dependency["name"]
                    _set(workflow, parameter["dest"], _get(data, src["dataKey"]))
                names.append(self.submit(workflow))
        self.submitted += names
        return names


def minio_event(bucket: str, key: str, size: int, etag: str) -> dict[str, Any]:
    """The data of the event a MinIO EventSource delivers for an object put in a bucket:
    `{"notification": [record]}`, the record shaped as S3's, its key URL-encoded."""
    now = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    record = {
        "eventVersion": "2.0",
        "eventSource": "minio:s3",
        "awsRegion": "",
        "eventTime": now,
        "eventName": "s3:ObjectCreated:Put",
        "userIdentity": {"principalId": "minioadmin"},
        "requestParameters": {"region": "", "sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": "17E0D0C6B3F2A5C1"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "Config",
            "bucket": {
                "name": bucket,
                "ownerIdentity": {"principalId": "minioadmin"},
                "arn": f"arn:aws:s3:::{bucket}",
            },
            "object": {
                "key": quote_plus(key),
                "size": size,
                "eTag": etag.strip('"'),
                "contentType": "text/csv",
                "userMetadata": {"content-type": "text/csv"},
                "sequencer": "17E0D0C6B3F2A5C1",
            },
        },
        "source": {"host": "127.0.0.1", "port": "", "userAgent": "MinIO (linux; amd64)"},
    }
    return {"notification": [record]}


def _passes(dependency: dict[str, Any], data: dict[str, Any]) -> bool:
    for check in dependency.get("filters", {}).get("data", []):
        assert check["type"] == "string", check
        value = str(_get(data, check["path"]))
        if not any(re.search(pattern, value) for pattern in check["value"]):
            return False
    return True


def _steps(path: str) -> list[str | int]:
    return [int(p) if p.isdigit() else p for p in path.split(".")]


def _get(data: Any, path: str) -> Any:
    for step in _steps(path):
        data = data[step]
    return data


def _set(data: Any, path: str, value: Any) -> None:
    *parents, last = _steps(path)
    for step in parents:
        data = data[step]
    data[last] = value
