"""The plain manifests of deploy/kubernetes, as ``kubectl apply -f`` reads them."""

from __future__ import annotations

import pytest
import yaml

from adapters.config import load_config_env, parse_config

from .chart import (
    MANIFESTS,
    NAMESPACE,
    ccm_container,
    flags,
    manifest,
    mount,
    only,
    pod_spec,
    volume,
    workload,
)
from .checks import accepted_settings, assert_hardened

WORKLOADS = [
    pytest.param("deployment.yaml", "Deployment", False, id="deployment"),
    pytest.param("variants/deployment-hostnetwork.yaml", "Deployment", True, id="hostnetwork"),
    pytest.param("variants/deployment-envfrom-secret.yaml", "Deployment", False, id="envfrom"),
    pytest.param("variants/daemonset-control-plane.yaml", "DaemonSet", True, id="daemonset"),
]
RBAC = manifest("rbac.yaml")
SECRET = only(manifest("secret.yaml"), "Secret")


def test_every_workload_manifest_is_checked() -> None:
    shipped = {
        str(p.relative_to(MANIFESTS))
        for p in MANIFESTS.rglob("*.yaml")
        if any(
            d["kind"] in ("Deployment", "DaemonSet")
            for d in manifest(str(p.relative_to(MANIFESTS)))
        )
    }
    assert shipped == {p.values[0] for p in WORKLOADS}


@pytest.mark.parametrize(("path", "kind", "host_network"), WORKLOADS)
def test_the_workload_is_hardened_and_runs_as_the_rbac_service_account(
    path: str, kind: str, host_network: bool
) -> None:
    obj = workload(manifest(path))
    assert obj["kind"] == kind
    assert obj["metadata"]["namespace"] == NAMESPACE
    assert_hardened(obj)
    spec = pod_spec(obj)
    assert spec.get("hostNetwork", False) is host_network
    if host_network and kind == "DaemonSet":
        assert spec["dnsPolicy"] == "Default"  # cluster DNS may not run yet
    account = only(RBAC, "ServiceAccount")["metadata"]
    assert (spec["serviceAccountName"], NAMESPACE) == (account["name"], account["namespace"])


@pytest.mark.parametrize(("path", "kind", "host_network"), WORKLOADS)
def test_the_args_are_flags_the_ccm_accepts(path: str, kind: str, host_network: bool) -> None:
    settings = accepted_settings(workload(manifest(path)))
    assert settings.leader_elect
    assert settings.leader_elect_resource_name == "cloud-controller-manager-xenorchestra"
    assert settings.leader_elect_resource_namespace == NAMESPACE
    if kind == "Deployment":
        assert workload(manifest(path))["spec"]["replicas"] == 2


@pytest.mark.parametrize(("path", "kind", "host_network"), WORKLOADS)
def test_the_cloud_config_reaches_the_ccm(path: str, kind: str, host_network: bool) -> None:
    docs = manifest(path)
    obj = workload(docs)
    container = ccm_container(obj)
    if "envFrom" in container:
        [source] = container["envFrom"]
        # The Go CCM's Secret, kept out of the workload file so applying it never
        # overwrites the operator's (an example sits beside it).
        assert all(d["kind"] != "Secret" for d in docs)
        secret = only(manifest("variants/xenorchestra-config-secret.yaml"), "Secret")
        assert source == {"secretRef": {"name": "xenorchestra-config"}}
        assert secret["metadata"]["name"] == "xenorchestra-config"
        assert "--cloud-config" not in flags(container)
        config = load_config_env(secret["stringData"])
        assert config.url == "https://xoa.example.com"
        return
    config_volume = volume(obj, "cloud-config")
    config_mount = mount(container, "cloud-config")
    assert config_volume is not None and config_mount is not None
    assert config_volume["secret"]["secretName"] == SECRET["metadata"]["name"]
    assert config_volume["secret"]["defaultMode"] == 0o400
    assert config_mount["readOnly"] is True
    assert flags(container)["--cloud-config"] == f"{config_mount['mountPath']}/config.yaml"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(SECRET["stringData"]["config.yaml"], id="secret.yaml"),
        pytest.param((MANIFESTS / "config.yaml.example").read_text(), id="config.yaml.example"),
    ],
)
def test_the_example_cloud_configs_are_valid(text: str) -> None:
    config = parse_config(yaml.safe_load(text), origin="example")
    assert config.url == "https://xoa.example.com"
    assert config.token is not None and config.username is None


def test_the_rbac_manifest_holds_the_identity_and_its_roles() -> None:
    kinds = sorted(d["kind"] for d in RBAC)
    assert kinds == [
        "ClusterRole",
        "ClusterRole",  # the CSR approver's (used only with cloud-node-csr-approval)
        "ClusterRoleBinding",
        "ClusterRoleBinding",
        "ClusterRoleBinding",
        "Role",
        "Role",
        "RoleBinding",
        "RoleBinding",
        "RoleBinding",
        "ServiceAccount",
    ]
    account = only(RBAC, "ServiceAccount")["metadata"]
    roles = {d["metadata"]["name"] for d in RBAC if d["kind"] in ("ClusterRole", "Role")}
    builtin = {"system:auth-delegator", "extension-apiserver-authentication-reader"}
    bindings = [d for d in RBAC if d["kind"].endswith("Binding")]
    assert {b["roleRef"]["name"] for b in bindings} == roles | builtin
    for binding in bindings:
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}
        ]


GO_SELECTOR = {
    "app.kubernetes.io/name": "xenorchestra-cloud-controller-manager",
    "app.kubernetes.io/instance": "xenorchestra-cloud-controller-manager",
}


@pytest.mark.parametrize(("path", "kind", "host_network"), WORKLOADS)
def test_the_workloads_have_the_go_ccms_name_and_selector(
    path: str, kind: str, host_network: bool
) -> None:
    obj = workload(manifest(path))
    assert obj["metadata"]["name"] == "xenorchestra-cloud-controller-manager"
    assert obj["spec"]["selector"] == {"matchLabels": GO_SELECTOR}
    assert obj["spec"]["template"]["metadata"]["labels"].items() >= GO_SELECTOR.items()


def test_the_rbac_objects_have_the_go_ccms_names() -> None:
    names = {(d["kind"], d["metadata"]["name"]) for d in RBAC}
    assert {
        ("ServiceAccount", "xenorchestra-cloud-controller-manager"),
        ("ClusterRole", "system:xenorchestra-cloud-controller-manager"),
        ("ClusterRoleBinding", "system:xenorchestra-cloud-controller-manager"),
        (
            "RoleBinding",
            "system:xenorchestra-cloud-controller-manager:extension-apiserver-authentication-reader",
        ),
    } <= names
