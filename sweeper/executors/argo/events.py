"""argo.trigger: the Argo Events objects that start the sweep when new data lands in a bucket.

    EventSource  listens to the bucket's S3-compatible notifications (MinIO's form) for objects
                 created under the prefix
    Sensor       on each, submits a Workflow from the sweep's WorkflowTemplate with the object's
                 key as its `data-key` parameter (the plan step reads that object as data.path),
                 at most argo.trigger_per_minute a minute

Plain dictionaries, not Hera's events models: those keep a trigger's Workflow only as encoded
text. The event a MinIO EventSource delivers is `{"notification": [<S3 record>, …]}`, so the
key is at `notification.0.s3.object.key` (URL-encoded, as S3 notifications give keys).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sweeper.core.settings import ArgoSettings
from sweeper.errors import SweeperError
from sweeper.executors.argo.names import dns_label

DATA_KEY = "data-key"  # the WorkflowTemplate's parameter: the key of the object that landed
EVENT = "data"  # the EventSource's one event
DEPENDENCY = "new-data"  # the Sensor's name for it
KEY_PATH = "notification.0.s3.object.key"  # where the event's data holds the object's key
API = "argoproj.io/v1alpha1"
EVENTS_USER = 9731  # the user Argo Events' pods run as


@dataclass(frozen=True)
class Watched:
    """The bucket and prefix argo.trigger watches, and the server that notifies of them."""

    bucket: str
    prefix: str
    endpoint: str  # host:port
    insecure: bool  # plain HTTP
    secret: str  # the Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY


def watched(argo: ArgoSettings) -> Watched:
    """argo.trigger read, or a one-line error naming what is missing."""
    trigger = argo.trigger or ""
    parts = urlsplit(trigger)
    if parts.scheme != "s3" or not parts.netloc:
        raise SweeperError(
            f"argo.trigger={trigger} must be a bucket and prefix, e.g. s3://bucket/incoming/"
        )
    given = argo.trigger_endpoint or argo.environment.get("AWS_ENDPOINT_URL", "")
    endpoint = urlsplit(given if "://" in given else f"//{given}")
    if not endpoint.hostname:
        raise SweeperError(
            "argo.trigger needs the bucket's server: argo.trigger_endpoint=host:port, or "
            "AWS_ENDPOINT_URL in argo.env (MinIO's bucket notifications; AWS S3 has none)"
        )
    if not argo.secrets:
        raise SweeperError(
            "argo.trigger needs argo.secrets=[name]: the Secret whose AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY the EventSource reads the bucket's notifications with"
        )
    if argo.trigger_per_minute < 1:
        raise SweeperError(f"argo.trigger_per_minute={argo.trigger_per_minute} must be >= 1")
    return Watched(
        bucket=parts.netloc,
        prefix=parts.path.lstrip("/"),
        # host:port only: no user:password@ of a URL reaches the manifest
        endpoint=endpoint.hostname + (f":{endpoint.port}" if endpoint.port else ""),
        insecure=endpoint.scheme == "http",
        secret=str(argo.secrets[0]),
    )


def sensor_account(name: str) -> str:
    """The ServiceAccount the Sensor submits workflows as (see rbac)."""
    return dns_label(f"{name}-sensor", 63)


def event_source(name: str, argo: ArgoSettings, experiment: str) -> dict[str, Any]:
    """The EventSource `name` on argo.trigger's bucket and prefix."""
    at = watched(argo)
    return {
        "apiVersion": API,
        "kind": "EventSource",
        "metadata": _metadata(name, argo, experiment),
        "spec": {
            "template": _restricted(),
            "minio": {
                EVENT: {
                    "endpoint": at.endpoint,
                    "insecure": at.insecure,
                    "bucket": {"name": at.bucket},
                    "events": ["s3:ObjectCreated:*"],
                    "filter": {"prefix": at.prefix, "suffix": ""},  # the schema needs both
                    "accessKey": {"name": at.secret, "key": "AWS_ACCESS_KEY_ID"},
                    "secretKey": {"name": at.secret, "key": "AWS_SECRET_ACCESS_KEY"},
                }
            },
        },
    }


def sensor(name: str, argo: ArgoSettings, experiment: str) -> dict[str, Any]:
    """The Sensor `name` that submits the WorkflowTemplate `name` for each new object."""
    watched(argo)
    workflow = {
        "apiVersion": API,
        "kind": "Workflow",
        "metadata": {
            "generateName": f"{name}-",
            "namespace": argo.namespace,
            "labels": {"sweeper/experiment": experiment, "sweeper/trigger": name},
        },
        "spec": {
            "workflowTemplateRef": {"name": name},
            "arguments": {"parameters": [{"name": DATA_KEY, "value": ""}]},
        },
    }
    return {
        "apiVersion": API,
        "kind": "Sensor",
        "metadata": _metadata(name, argo, experiment),
        "spec": {
            "template": {**_restricted(), "serviceAccountName": sensor_account(name)},
            "dependencies": [
                {
                    "name": DEPENDENCY,
                    "eventSourceName": name,
                    "eventName": EVENT,
                    # Objects created, not removed (the EventSource asks for these only, too).
                    "filters": {
                        "data": [
                            {
                                "path": "notification.0.eventName",
                                "type": "string",
                                "value": ["s3:ObjectCreated:.*"],
                            }
                        ]
                    },
                }
            ],
            "triggers": [
                {
                    "template": {
                        "name": "sweep",
                        "argoWorkflow": {
                            "operation": "submit",
                            "source": {"resource": workflow},
                            "parameters": [
                                {
                                    "src": {"dependencyName": DEPENDENCY, "dataKey": KEY_PATH},
                                    "dest": "spec.arguments.parameters.0.value",
                                }
                            ],
                        },
                    },
                    # Each object is a sweep, a burst of them queued at this rate (the limiter
                    # waits, it drops nothing); identical content trains nothing (the cache).
                    "rateLimit": {"unit": "Minute", "requestsPerUnit": argo.trigger_per_minute},
                }
            ],
        },
    }


def _metadata(name: str, argo: ArgoSettings, experiment: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": argo.namespace,
        "labels": {"app.kubernetes.io/name": "sweeper", "sweeper/experiment": experiment},
    }


def _restricted() -> dict[str, Any]:
    """The pod Argo Events runs for the object, admissible under Pod Security "restricted"."""
    return {
        "securityContext": {
            "runAsNonRoot": True,
            # Argo Events' image names no user: without one it would run as root, which
            # runAsNonRoot refuses. Its charts and docs run it as 9731.
            "runAsUser": EVENTS_USER,
            "runAsGroup": EVENTS_USER,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "container": {
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
                "readOnlyRootFilesystem": True,
                "runAsNonRoot": True,
            }
        },
    }
