"""Kubernetes' Pod Security Standard "restricted", as its documentation states it
(kubernetes.io/docs/concepts/security/pod-security-standards), checked on the pods an Argo
manifest asks for: every container template, with the workflow's pod-level securityContext.

Baseline: no host namespaces, ports or paths, not privileged, capabilities added only from the
baseline list, no unsafe sysctls, procMount Default, seccomp not Unconfined. Restricted adds:
volumes of the listed types only, allowPrivilegeEscalation false, runAsNonRoot true, runAsUser not
0, seccompProfile RuntimeDefault or Localhost, capabilities drop ALL and add at most
NET_BIND_SERVICE. (Argo's own init/wait containers come from its controller's configuration.)
"""

from __future__ import annotations

from typing import Any

RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}


def violations(manifest: dict[str, Any]) -> list[str]:
    """Every way a pod of the manifest breaks the restricted profile; empty when none does."""
    if "spec" not in manifest:  # a ServiceAccount, Role or RoleBinding: no pod
        return []
    if manifest["kind"] in ("EventSource", "Sensor"):  # Argo Events' pod: its spec.template
        template = manifest["spec"].get("template") or {}
        level = template.get("securityContext") or {}
        where = f"{manifest['kind']} {manifest['metadata']['name']}"
        inside = _container(template.get("container") or {}, level)
        return _pod(where, level, template, template) + [f"{where}: {v}" for v in inside]
    spec = manifest["spec"]
    spec = spec.get("workflowSpec", spec)
    pod = spec.get("securityContext") or {}
    found = []
    for template in spec.get("templates", []):  # none in a CronWorkflow that runs a template
        containers = [template[k] for k in ("container", "script") if k in template]
        containers += template.get("initContainers", []) + template.get("sidecars", [])
        if not containers:
            continue  # a DAG or steps template makes no pod of its own
        where = f"template {template['name']}"
        level = {**pod, **(template.get("securityContext") or {})}
        found += _pod(where, level, spec, template)
        found += [f"{where}: {v}" for c in containers for v in _container(c, level)]
    return found


def _pod(
    where: str, pod: dict[str, Any], spec: dict[str, Any], template: dict[str, Any]
) -> list[str]:
    found = []
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key) or template.get(key):
            found.append(f"{where}: {key} is set")
    for volume in [*spec.get("volumes", []), *template.get("volumes", [])]:
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            found.append(f"{where}: volume {volume['name']} is {sorted(kinds)}")
    unsafe = [s["name"] for s in pod.get("sysctls", []) if s["name"] not in SAFE_SYSCTLS]
    if unsafe:
        found.append(f"{where}: unsafe sysctls {unsafe}")
    if (pod.get("seccompProfile") or {}).get("type") == "Unconfined":
        found.append(f"{where}: the pod's seccompProfile is Unconfined")
    if pod.get("runAsUser") == 0:
        found.append(f"{where}: the pod runs as user 0")
    return found


def _container(container: dict[str, Any], pod: dict[str, Any]) -> list[str]:
    context = container.get("securityContext") or {}
    found = []
    if context.get("privileged"):
        found.append("privileged")
    if any(p.get("hostPort") for p in container.get("ports", [])):
        found.append("a hostPort")
    if context.get("procMount", "Default") != "Default":
        found.append("procMount is not Default")
    if context.get("allowPrivilegeEscalation") is not False:
        found.append("allowPrivilegeEscalation is not false")
    if not context.get("runAsNonRoot", pod.get("runAsNonRoot")):
        found.append("runAsNonRoot is not true (pod or container)")
    if context.get("runAsUser", pod.get("runAsUser")) == 0:
        found.append("runs as user 0")
    seccomp = (context.get("seccompProfile") or pod.get("seccompProfile") or {}).get("type")
    if seccomp not in ("RuntimeDefault", "Localhost"):
        found.append(f"seccompProfile is {seccomp}, not RuntimeDefault or Localhost")
    capabilities = context.get("capabilities") or {}
    if "ALL" not in (capabilities.get("drop") or []):
        found.append("capabilities do not drop ALL")
    if set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
        found.append(f"capabilities add {capabilities['add']}")
    name = container.get("name")  # a template's main container has none: the template's
    return [f"container {name}: {v}" if name else v for v in found]
