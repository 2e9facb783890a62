"""argo.rbac: the least privilege a sweep's pods need, as manifests to apply with it.

    <service_account>           the workflow's pods: Argo's executor reports each step's
                                outputs as a WorkflowTaskResult (create, patch); nothing else
    <template>-sensor           argo.trigger's Sensor: submits Workflows from the template
                                (`argo submit`, which then lists them by label: get, list)

The Secrets the pods read (argo.secrets, argo.notify) are mounted by the kubelet, not read
through the API, so no account may read Secrets. The EventSource reads none of the API.
"""

from __future__ import annotations

from typing import Any

from sweeper.core.settings import ArgoSettings
from sweeper.errors import SweeperError
from sweeper.executors.argo.events import sensor_account


def check(argo: ArgoSettings) -> str:
    """The workflow pods' ServiceAccount, or a one-line error: it must be named."""
    if not argo.service_account:
        raise SweeperError(
            "argo.rbac needs argo.service_account=<name>: the ServiceAccount to make for the "
            "sweep's pods (their workflows run as it)"
        )
    return argo.service_account


def rbac(name: str, argo: ArgoSettings) -> list[dict[str, Any]]:
    """ServiceAccount, Role and RoleBinding for the workflow's pods (and the Sensor's, with
    argo.trigger); `name`: the WorkflowTemplate's."""
    accounts = {
        check(argo): [
            {
                "apiGroups": ["argoproj.io"],
                "resources": ["workflowtaskresults"],
                "verbs": ["create", "patch"],
            }
        ]
    }
    if argo.trigger:
        accounts[sensor_account(name)] = [
            {
                "apiGroups": ["argoproj.io"],
                "resources": ["workflows"],
                "verbs": ["create", "get", "list"],
            },
            {
                "apiGroups": ["argoproj.io"],
                "resources": ["workflowtemplates"],
                "resourceNames": [name],
                "verbs": ["get"],
            },
        ]
    objects: list[dict[str, Any]] = []
    for account, rules in accounts.items():
        meta = {
            "name": account,
            "namespace": argo.namespace,
            "labels": {"app.kubernetes.io/name": "sweeper"},
        }
        objects += [
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": meta,
                "rules": rules,
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": meta,
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": account,
                },
                "subjects": [
                    {"kind": "ServiceAccount", "name": account, "namespace": argo.namespace}
                ],
            },
        ]
    return objects
