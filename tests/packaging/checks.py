"""What every shipped workload (chart render or plain manifest) must get right."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from entrypoints.flags.settings import Settings, parse_command_line

from .chart import Obj, ccm_container, flags, mount, pod_spec

UNINITIALIZED = ("node.cloudprovider.kubernetes.io/uninitialized", "true", "NoSchedule")
CONTROL_PLANE = ("node-role.kubernetes.io/control-plane", "", "NoSchedule")
NOT_READY = ("node.kubernetes.io/not-ready", "", "NoSchedule")
RUN_AS = 10258
POD_ENV = {
    "POD_NAME": "metadata.name",
    "POD_NAMESPACE": "metadata.namespace",
    "POD_UID": "metadata.uid",
}


def tolerates(tolerations: Iterable[Mapping[str, Any]], taint: tuple[str, str, str]) -> bool:
    """Whether a pod with ``tolerations`` may schedule on a node with ``taint``
    (key, value, effect), by the scheduler's matching rules."""
    key, value, effect = taint
    for toleration in tolerations:
        if toleration.get("effect") and toleration["effect"] != effect:
            continue
        if toleration.get("operator", "Equal") == "Exists":
            if not toleration.get("key") or toleration["key"] == key:
                return True
        elif toleration.get("key") == key and toleration.get("value", "") == value:
            return True
    return False


def accepted_settings(obj: Obj) -> Settings:
    """The container's args through the CCM's own flag parser: every flag exists,
    every value parses, and they make sense together."""
    args = [str(a) for a in ccm_container(obj).get("args", [])]
    return parse_command_line(args)


def assert_hardened(obj: Obj) -> None:
    """Security, scheduling, probes and the downward API, as the CCM needs them."""
    spec = pod_spec(obj)
    container = ccm_container(obj)
    pod_security = spec["securityContext"]
    assert pod_security["runAsNonRoot"] is True
    assert pod_security["runAsUser"] == RUN_AS
    security = container["securityContext"]
    seccomp = pod_security.get("seccompProfile") or security.get("seccompProfile")
    assert seccomp == {"type": "RuntimeDefault"}
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert spec["priorityClassName"] == "system-cluster-critical"
    assert spec["serviceAccountName"]

    tolerations = spec.get("tolerations", [])
    assert tolerates(tolerations, UNINITIALIZED), "cannot start before nodes are initialized"
    assert tolerates(tolerations, CONTROL_PLANE), "cannot run on control planes"
    if spec.get("hostNetwork"):
        assert tolerates(tolerations, NOT_READY), "host network: must start on NotReady nodes"

    port = next(p for p in container["ports"] if p["name"] == "metrics")
    assert port["containerPort"] == int(flags(container)["--secure-port"])
    for probe, path in (("livenessProbe", "/livez"), ("readinessProbe", "/readyz")):
        assert container[probe]["httpGet"] == {
            "path": path,
            "port": "metrics",
            "scheme": "HTTPS",
        }, probe

    tmp = mount(container, "tmp")
    assert tmp is not None and tmp["mountPath"] == "/tmp"
    assert any(v["name"] == "tmp" and "emptyDir" in v for v in spec["volumes"])
    downward = {
        e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"]
        for e in container.get("env", [])
        if "valueFrom" in e and "fieldRef" in e["valueFrom"]
    }
    assert downward.items() >= POD_ENV.items()
