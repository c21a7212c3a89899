"""(c) The Go chart's values file works here: every key of the Go chart
(tests/data/go-ccm-deploy.md), set to a non-default value, reaches the objects
this chart renders, with the Go chart's meaning."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.packaging.chart import ccm_container, helm_template, of_kind, only, pod_spec, workload

from .go_install import go_values

Docs = list[dict[str, Any]]

#: Two Go values files between them set every key to a non-default: some keys
#: exclude others (existingConfigSecret wins over config, a DaemonSet has no
#: replicas, annotations need a ServiceAccount the chart creates).
FIRST: dict[str, Any] = {
    "replicaCount": 3,
    "image": {"repository": "registry.example/xoccm", "pullPolicy": "Always", "tag": "v9"},
    "imagePullSecrets": [{"name": "regcred"}],
    "nameOverride": "xoccm",
    "fullnameOverride": "my-ccm",
    "extraEnvs": [{"name": "TZ", "value": "UTC"}],
    "extraArgs": ["--node-monitor-period=7s"],
    "enabledControllers": ["cloud-node", "cloud-node-label-sync"],
    "logVerbosityLevel": 5,
    "existingConfigSecret": "xo-secret",
    "existingConfigSecretKey": "xo.yaml",
    "existingConfigSecretPath": "xo/config.yaml",
    "config": {"url": "https://ignored.example", "token": "t"},
    "serviceAccount": {"create": False, "annotations": {}, "name": "prepared-sa"},
    "priorityClassName": "high",
    "initContainers": [{"name": "init", "image": "busybox", "command": ["true"]}],
    "hostAliases": [{"ip": "10.0.0.9", "hostnames": ["xo.lan"]}],
    "podAnnotations": {"example.com/a": "b"},
    "podSecurityContext": {
        "runAsNonRoot": False,
        "runAsUser": 2000,
        "runAsGroup": 2001,
        "fsGroup": 2002,
        "fsGroupChangePolicy": "Always",
    },
    "securityContext": {
        "allowPrivilegeEscalation": True,
        "capabilities": {"drop": ["NET_RAW"]},
        "seccompProfile": {"type": "Unconfined"},
    },
    "resources": {"requests": {"cpu": "200m", "memory": "300Mi"}},
    "useDaemonSet": True,
    "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}},
    "nodeSelector": {"disk": "ssd"},
    "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
                ]
            }
        }
    },
    "extraVolumes": [{"name": "ca", "configMap": {"name": "ca"}}],
    "extraVolumeMounts": [{"name": "ca", "mountPath": "/etc/ca"}],
    "useHostNetwork": True,
}
SECOND: dict[str, Any] = {
    **{k: v for k, v in FIRST.items() if not k.startswith("existingConfigSecret")},
    "config": {"url": "https://xo.example", "insecure": True, "token": "tok"},
    "serviceAccount": {"create": True, "annotations": {"example.com/o": "p"}, "name": "mine"},
    "useDaemonSet": False,
    "updateStrategy": {"type": "Recreate"},
}


def value(values: dict[str, Any], dotted: str) -> Any:
    node: Any = values
    for part in dotted.split("."):
        node = node[part]
    return node


def env(docs: Docs) -> list[dict[str, Any]]:
    return list(ccm_container(workload(docs)).get("env", []))


def arg(docs: Docs, flag: str) -> str:
    args = [a for a in ccm_container(workload(docs))["args"] if a.startswith(f"{flag}=")]
    return args[-1].split("=", 1)[1]


def cloud_config_volume(docs: Docs) -> dict[str, Any]:
    return next(v for v in pod_spec(workload(docs))["volumes"] if v["name"] == "cloud-config")


def config_secret(docs: Docs) -> dict[str, Any]:
    return yaml.safe_load(only(docs, "Secret")["stringData"]["config.yaml"])  # type: ignore[no-any-return]


CHECKS: dict[str, tuple[str, Callable[[Docs, Any], bool]]] = {
    "replicaCount": ("second", lambda d, v: workload(d)["spec"]["replicas"] == v),
    "image.repository": (
        "first",
        lambda d, v: ccm_container(workload(d))["image"].startswith(f"{v}:"),
    ),
    "image.pullPolicy": ("first", lambda d, v: ccm_container(workload(d))["imagePullPolicy"] == v),
    "image.tag": ("first", lambda d, v: ccm_container(workload(d))["image"].endswith(f":{v}")),
    "imagePullSecrets": ("first", lambda d, v: pod_spec(workload(d))["imagePullSecrets"] == v),
    "nameOverride": (
        "first",
        lambda d, v: workload(d)["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] == v,
    ),
    "fullnameOverride": ("first", lambda d, v: workload(d)["metadata"]["name"] == v),
    "extraEnvs": ("first", lambda d, v: all(e in env(d) for e in v)),
    "extraArgs": ("first", lambda d, v: ccm_container(workload(d))["args"][-len(v) :] == v),
    "enabledControllers": ("first", lambda d, v: arg(d, "--controllers") == ",".join(v)),
    "logVerbosityLevel": ("first", lambda d, v: arg(d, "--v") == str(v)),
    "existingConfigSecret": (
        "first",
        lambda d, v: cloud_config_volume(d)["secret"]["secretName"] == v,
    ),
    "existingConfigSecretKey": (
        "first",
        lambda d, v: cloud_config_volume(d)["secret"]["items"][0]["key"] == v,
    ),
    "existingConfigSecretPath": (
        "first",
        lambda d, v: (
            cloud_config_volume(d)["secret"]["items"][0]["path"] == v
            and arg(d, "--cloud-config") == f"/etc/xenorchestra/{v}"
        ),
    ),
    "config": ("second", lambda d, v: config_secret(d) == v),
    "serviceAccount.create": (
        "first",
        lambda d, v: of_kind(d, "ServiceAccount") == [] and v is False,
    ),
    "serviceAccount.annotations": (
        "second",
        lambda d, v: only(d, "ServiceAccount")["metadata"]["annotations"] == v,
    ),
    "serviceAccount.name": (
        "first",
        lambda d, v: (
            pod_spec(workload(d))["serviceAccountName"] == v
            and all(
                b["subjects"][0]["name"] == v
                for b in of_kind(d, "ClusterRoleBinding", "RoleBinding")
            )
        ),
    ),
    "priorityClassName": ("first", lambda d, v: pod_spec(workload(d))["priorityClassName"] == v),
    "initContainers": ("first", lambda d, v: pod_spec(workload(d))["initContainers"] == v),
    "hostAliases": ("first", lambda d, v: pod_spec(workload(d))["hostAliases"] == v),
    "podAnnotations": (
        "first",
        lambda d, v: (
            workload(d)["spec"]["template"]["metadata"]["annotations"].items() >= v.items()
        ),
    ),
    "resources.requests.cpu": (
        "first",
        lambda d, v: ccm_container(workload(d))["resources"]["requests"]["cpu"] == v,
    ),
    "resources.requests.memory": (
        "first",
        lambda d, v: ccm_container(workload(d))["resources"]["requests"]["memory"] == v,
    ),
    "useDaemonSet": ("first", lambda d, v: workload(d)["kind"] == "DaemonSet" and v),
    "updateStrategy.type": (
        "second",
        lambda d, v: workload(d)["spec"]["strategy"] == {"type": v},
    ),
    "updateStrategy.rollingUpdate.maxUnavailable": (
        "first",
        lambda d, v: workload(d)["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] == v,
    ),
    "nodeSelector": ("first", lambda d, v: pod_spec(workload(d))["nodeSelector"] == v),
    "tolerations": (
        "first",
        lambda d, v: pod_spec(workload(d))["tolerations"][: len(v)] == v,
    ),
    "affinity": ("first", lambda d, v: pod_spec(workload(d))["affinity"] == v),
    "extraVolumes": (
        "first",
        lambda d, v: all(x in pod_spec(workload(d))["volumes"] for x in v),
    ),
    "extraVolumeMounts": (
        "first",
        lambda d, v: all(x in ccm_container(workload(d))["volumeMounts"] for x in v),
    ),
    "useHostNetwork": ("first", lambda d, v: pod_spec(workload(d))["hostNetwork"] is v),
}
for _key in ("runAsNonRoot", "runAsUser", "runAsGroup", "fsGroup", "fsGroupChangePolicy"):
    CHECKS[f"podSecurityContext.{_key}"] = (
        "first",
        lambda d, v, k=_key: pod_spec(workload(d))["securityContext"][k] == v,  # type: ignore[misc]
    )
CHECKS["securityContext.allowPrivilegeEscalation"] = (
    "first",
    lambda d, v: ccm_container(workload(d))["securityContext"]["allowPrivilegeEscalation"] is v,
)
CHECKS["securityContext.capabilities.drop"] = (
    "first",
    lambda d, v: ccm_container(workload(d))["securityContext"]["capabilities"]["drop"] == v,
)
CHECKS["securityContext.seccompProfile.type"] = (
    "first",
    lambda d, v: ccm_container(workload(d))["securityContext"]["seccompProfile"]["type"] == v,
)


@pytest.fixture(scope="module")
def rendered(helm: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Docs]:
    out = {}
    for name, values in (("first", FIRST), ("second", SECOND)):
        path = tmp_path_factory.mktemp("go-values") / f"{name}.yaml"
        path.write_text(yaml.safe_dump(values), encoding="utf-8")
        out[name] = helm_template(helm, path)
    return out


def test_every_go_key_has_a_check_and_a_non_default_value() -> None:
    defaults = go_values()
    assert sorted(CHECKS) == sorted(defaults)
    for key, default in defaults.items():
        which, _ = CHECKS[key]
        assert value(FIRST if which == "first" else SECOND, key) != default, key


@pytest.mark.parametrize("key", sorted(go_values()))
def test_the_go_key_reaches_the_rendered_objects(rendered: dict[str, Docs], key: str) -> None:
    which, check = CHECKS[key]
    values = FIRST if which == "first" else SECOND
    assert check(rendered[which], value(values, key)), key
