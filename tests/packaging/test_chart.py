"""The Helm chart, rendered with helm for the defaults and every ci/*-values.yaml.

Each combination has a row of expectations below; a new ci file without a
row fails, so CI never renders a combination nobody checks.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapters.config import parse_config

from .chart import (
    COMBINATIONS,
    NAMESPACE,
    RELEASE,
    Obj,
    RenderError,
    ccm_container,
    flags,
    helm_lint,
    helm_template,
    manifest,
    mount,
    of_kind,
    only,
    pod_spec,
    render,
    volume,
    workload,
)
from .checks import accepted_settings, assert_hardened

CONFIG_DIR = "/etc/xenorchestra"
MONITORING = ("Service", "ServiceMonitor", "PodMonitor")


@dataclass(frozen=True)
class Expected:
    kind: str = "Deployment"
    replicas: int | None = 1
    #: where the cloud config comes from: inline (the chart's Secret), existing
    #: (a Secret the user made), env (XOA_* variables of a Secret) or none (no
    #: --cloud-config: XOA_* from extraEnvs, as the Go chart without config)
    source: str = "none"
    secret: str = RELEASE
    key: str = "config.yaml"
    path: str = "config.yaml"
    host_network: bool = False
    dns_policy: str = "Default"
    leader_elect: bool = False
    flags: Mapping[str, str] = field(default_factory=dict)
    monitoring: frozenset[str] = frozenset()
    #: fields of the inline config, as parse_config reads them
    config: Mapping[str, Any] = field(default_factory=dict)


EXPECTED: dict[str, Expected] = {
    "default": Expected(flags={"--v": "2"}),
    "csr-approval": Expected(
        source="inline",
        flags={
            "--controllers": "cloud-node,cloud-node-lifecycle,cloud-node-label-sync,"
            "cloud-node-csr-approval"
        },
    ),
    "credentials-secret": Expected(
        source="inline",
        config={"token": None, "uses_token": True},  # tokenFile: the mounted Secret
    ),
    "daemonset": Expected(
        kind="DaemonSet", replicas=None, source="inline", host_network=True, leader_elect=True
    ),
    "env-secret": Expected(
        source="env", secret="xenorchestra-config", replicas=2, leader_elect=True
    ),
    "existing-secret": Expected(
        secret="my-xo-config", key="xo.yaml", path="xo-config.yaml", source="existing"
    ),
    "extras": Expected(
        source="inline",
        replicas=3,
        leader_elect=True,
        flags={"--node-monitor-period": "10s", "--concurrent-node-syncs": "4"},
        config={
            "ca_file": Path("/etc/xo-ca/ca.pem"),
            "zone_source": "hostTag",
            "zone_tag": "rack",
            "region_source": "poolTag",
            "region_tag": "k8s.region",
        },
    ),
    "go-install-guide": Expected(
        source="inline",
        flags={"--v": "5"},
        config={"url": "http://xo.example.com", "insecure": False},
    ),
    "hostnetwork": Expected(
        source="inline",
        replicas=2,
        leader_elect=True,
        host_network=True,
        dns_policy="ClusterFirstWithHostNet",
    ),
    "inline-password": Expected(
        source="inline",
        config={
            "username": "admin@admin.net",
            "token": None,
            "insecure": True,
            "sync_taints": True,
            "deletion_confirm_delay": 60.0,
        },
    ),
    "inline-token": Expected(
        source="inline",
        config={"url": "https://xoa.example.com", "username": None, "client_timeout": 30.0},
    ),
    "monitoring": Expected(source="inline", monitoring=frozenset(MONITORING)),
    "plain-deployment": Expected(source="existing", replicas=2, leader_elect=True),
    "single-replica": Expected(
        source="inline",
        flags={
            "--v": "4",
            "--log-format": "json",
            "--dry-run-deletions": "true",
            "--controllers": "cloud-node,cloud-node-lifecycle",
        },
    ),
}

CASES = [pytest.param(name, id=name) for name in COMBINATIONS]


def expected(combination: str) -> Expected:
    if combination not in EXPECTED:
        pytest.fail(f"ci/{combination}-values.yaml has no row in EXPECTED")
    return EXPECTED[combination]


@pytest.mark.parametrize("combination", CASES)
def test_the_chart_passes_strict_linting(helm: Path, combination: str) -> None:
    linted = helm_lint(helm, combination)
    assert linted.returncode == 0, linted.stdout + linted.stderr


@pytest.mark.parametrize("combination", CASES)
def test_the_workload_has_the_expected_kind_replicas_and_network(
    helm: Path, combination: str
) -> None:
    want = expected(combination)
    obj = workload(render(helm, combination))
    spec = pod_spec(obj)
    assert obj["kind"] == want.kind
    assert obj["spec"].get("replicas") == want.replicas
    assert spec["hostNetwork"] is want.host_network
    assert spec["dnsPolicy"] == want.dns_policy


@pytest.mark.parametrize("combination", CASES)
def test_the_args_are_flags_the_ccm_accepts(helm: Path, combination: str) -> None:
    want = expected(combination)
    obj = workload(render(helm, combination))
    settings = accepted_settings(obj)
    assert settings.leader_elect is want.leader_elect
    assert settings.leader_elect_resource_name == "cloud-controller-manager-xenorchestra"
    assert settings.leader_elect_resource_namespace == NAMESPACE
    assert settings.secure_port == 10258
    assert settings.authorization_always_allow_paths == (
        "/healthz",
        "/livez",
        "/readyz",
        "/metrics",
    )
    assert flags(ccm_container(obj)).items() >= dict(want.flags).items()


@pytest.mark.parametrize("combination", CASES)
def test_the_pod_is_hardened_and_schedulable_before_nodes_are_initialized(
    helm: Path, combination: str
) -> None:
    assert_hardened(workload(render(helm, combination)))


@pytest.mark.parametrize("combination", CASES)
def test_the_cloud_config_reaches_the_ccm_from_exactly_one_source(
    helm: Path, combination: str, tmp_path: Path
) -> None:
    want = expected(combination)
    docs = render(helm, combination)
    obj = workload(docs)
    container = ccm_container(obj)
    cloud_config = flags(container).get("--cloud-config")
    secrets = of_kind(docs, "Secret")

    if want.source in ("env", "none"):
        assert cloud_config is None
        if want.source == "env":
            assert container["envFrom"] == [{"secretRef": {"name": want.secret}}]
        else:
            assert "envFrom" not in container
        assert volume(obj, "cloud-config") is None and mount(container, "cloud-config") is None
        assert secrets == []
        return

    assert "envFrom" not in container
    config_volume = volume(obj, "cloud-config")
    config_mount = mount(container, "cloud-config")
    assert config_volume is not None and config_mount is not None
    assert config_mount == {"name": "cloud-config", "mountPath": CONFIG_DIR, "readOnly": True}
    assert config_volume["secret"]["secretName"] == want.secret
    assert config_volume["secret"]["items"] == [{"key": want.key, "path": want.path}]
    assert config_volume["secret"]["defaultMode"] == 0o400
    assert cloud_config == f"{CONFIG_DIR}/{want.path}"
    annotations = obj["spec"]["template"]["metadata"].get("annotations") or {}

    if want.source == "existing":
        assert secrets == [], "the chart must not create a Secret the user provides"
        assert "checksum/config" not in annotations
        return

    secret = only(docs, "Secret")
    assert secret["metadata"]["name"] == want.secret
    text = secret["stringData"][want.key]
    config = parse_config(
        _with_credential_files(yaml.safe_load(text), container, tmp_path),
        origin="the chart's Secret",
    )
    for name, value in want.config.items():
        assert getattr(config, name) == value, name
    assert len(annotations["checksum/config"]) == 64  # rolls the pods when it changes


def _with_credential_files(data: dict[str, Any], container: Obj, tmp: Path) -> dict[str, Any]:
    """The config as the CCM reads it in the pod: a credentials file it names must be
    in a mounted volume; here a local file stands for it (the loader reads it)."""
    for key in ("tokenFile", "passwordFile"):
        if key in data:
            mounts = [m["mountPath"] for m in container["volumeMounts"]]
            assert any(data[key].startswith(f"{m}/") for m in mounts), (key, mounts)
            (tmp / key).write_text("secret-from-a-file\n")
            data = {**data, key: str(tmp / key)}
    return data


CREDENTIALS = "/etc/xenorchestra-credentials"


@pytest.mark.parametrize(
    ("set_values", "config_key", "variable", "file"),
    [
        pytest.param(
            ["config.url=https://xo", "credentialsSecret.name=xo-token"],
            "tokenFile",
            None,
            "token",
            id="inline-config-token",
        ),
        pytest.param(
            [
                "config.url=https://xo",
                "config.username=ccm",
                "credentialsSecret.name=xo-password",
                "credentialsSecret.passwordKey=password",
            ],
            "passwordFile",
            None,
            "password",
            id="inline-config-password",
        ),
        pytest.param(
            ["envFromSecret=xenorchestra-config", "credentialsSecret.name=xo-token"],
            None,
            "XOA_TOKEN_FILE",
            "token",
            id="env-secret",
        ),
        pytest.param(
            ["credentialsSecret.name=xo-token", "credentialsSecret.tokenKey=xo.token"],
            None,
            "XOA_TOKEN_FILE",
            "xo.token",
            id="extra-envs",
        ),
        pytest.param(
            ["existingConfigSecret=mine", "credentialsSecret.name=xo-token"],
            None,
            None,
            "token",
            id="existing-config-names-it-itself",
        ),
    ],
)
def test_the_credentials_secret_is_mounted_as_a_directory_and_named_to_the_ccm(
    helm: Path,
    set_values: list[str],
    config_key: str | None,
    variable: str | None,
    file: str,
) -> None:
    docs = helm_template(helm, set_values=set_values)
    obj = workload(docs)
    container = ccm_container(obj)
    name = next(v.split("=", 1)[1] for v in set_values if v.startswith("credentialsSecret.name"))
    assert volume(obj, "xo-credentials") == {
        "name": "xo-credentials",
        "secret": {
            "secretName": name,
            "defaultMode": 0o400,
            "items": [{"key": file, "path": file}],
        },
    }
    # no subPath: a subPath mount never sees the kubelet's updates (no rotation)
    assert mount(container, "xo-credentials") == {
        "name": "xo-credentials",
        "mountPath": CREDENTIALS,
        "readOnly": True,
    }
    env = {e["name"]: e.get("value") for e in container["env"]}
    named = {k: v for k, v in env.items() if k.endswith("_FILE")}
    assert named == ({variable: f"{CREDENTIALS}/{file}"} if variable else {})
    secrets = of_kind(docs, "Secret")
    if config_key is None:
        assert all("config.yaml" not in s.get("stringData", {}) for s in secrets)
        return
    config = yaml.safe_load(only(docs, "Secret")["stringData"]["config.yaml"])
    assert config[config_key] == f"{CREDENTIALS}/{file}"
    assert config_key.removesuffix("File") not in config


@pytest.mark.parametrize("combination", CASES)
def test_monitoring_objects_exist_only_when_enabled(helm: Path, combination: str) -> None:
    want = expected(combination)
    docs = render(helm, combination)
    assert {d["kind"] for d in of_kind(docs, *MONITORING)} == want.monitoring
    if not want.monitoring:
        return
    pod_labels = workload(docs)["spec"]["template"]["metadata"]["labels"]
    service = only(docs, "Service")
    service_monitor = only(docs, "ServiceMonitor")
    pod_monitor = only(docs, "PodMonitor")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    selected = service_monitor["spec"]["selector"]["matchLabels"]
    assert selected.items() <= service["metadata"]["labels"].items()
    assert service_monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert service_monitor["metadata"]["labels"]["release"] == "prometheus"
    assert pod_monitor["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pod_monitor["spec"]["podMetricsEndpoints"][0] == {
        "port": "metrics",
        "path": "/metrics",
        "interval": "30s",
        "honorLabels": True,
        "scheme": "https",
        "tlsConfig": {"insecureSkipVerify": True},
    }
    assert service_monitor["spec"]["endpoints"][0]["scheme"] == "https"
    # The XO series' own `endpoint` label (the route) stays `endpoint`, not
    # `exported_endpoint`: the dashboard's "by route" panels read it.
    assert service_monitor["spec"]["endpoints"][0]["honorLabels"] is True


@pytest.mark.parametrize("combination", CASES)
def test_the_objects_fit_together(helm: Path, combination: str) -> None:
    docs = render(helm, combination)
    obj = workload(docs)
    account = only(docs, "ServiceAccount")
    (role,) = [
        r
        for r in of_kind(docs, "ClusterRole")
        if not r["metadata"]["name"].endswith(":csr-approval")
    ]
    for doc in docs:
        if doc["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["kind"]
    assert pod_spec(obj)["serviceAccountName"] == account["metadata"]["name"]
    roles = {r["metadata"]["name"] for r in of_kind(docs, "ClusterRole", "Role")}
    builtin = {"system:auth-delegator", "extension-apiserver-authentication-reader"}
    bindings = of_kind(docs, "ClusterRoleBinding", "RoleBinding")
    assert {b["roleRef"]["name"] for b in bindings} == roles | builtin
    assert role["metadata"]["name"] == f"system:{RELEASE}"
    for binding in bindings:
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": NAMESPACE}
        ]
    selector = obj["spec"]["selector"]["matchLabels"]
    assert selector.items() <= obj["spec"]["template"]["metadata"]["labels"].items()


def test_the_extra_values_are_all_rendered(helm: Path) -> None:
    docs = render(helm, "extras")
    obj = workload(docs)
    spec = pod_spec(obj)
    container = ccm_container(obj)
    template = obj["spec"]["template"]["metadata"]
    assert {"name": "TZ", "value": "UTC"} in container["env"]
    assert volume(obj, "xo-ca") == {"name": "xo-ca", "configMap": {"name": "xo-ca"}}
    assert mount(container, "xo-ca") == {
        "name": "xo-ca",
        "mountPath": "/etc/xo-ca",
        "readOnly": True,
    }
    assert container["image"] == "registry.example.com/xoccm:v0.1.0"
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    assert container["resources"]["requests"] == {"cpu": "100m", "memory": "192Mi"}
    assert "requiredDuringSchedulingIgnoredDuringExecution" in spec["affinity"]["nodeAffinity"]
    assert "podAntiAffinity" not in spec["affinity"]  # the user's affinity replaces ours
    assert template["annotations"]["example.com/team"] == "platform"
    assert template["labels"]["team"] == "platform"
    assert spec["hostAliases"] == [{"ip": "10.0.0.10", "hostnames": ["xoa.example.com"]}]
    assert [c["name"] for c in spec["initContainers"]] == ["wait-for-xo"]
    assert obj["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 2, "maxSurge": 1},
    }
    assert {"key": "dedicated", "operator": "Equal", "value": "infra"}.items() <= next(
        t for t in spec["tolerations"] if t["key"] == "dedicated"
    ).items()
    account = only(docs, "ServiceAccount")
    assert account["metadata"]["annotations"] == {"example.com/owner": "platform"}


@pytest.mark.parametrize(
    ("chart", "plain"),
    [
        pytest.param("plain-deployment", "deployment.yaml", id="deployment"),
        pytest.param("env-secret", "variants/deployment-envfrom-secret.yaml", id="envfrom"),
        pytest.param("hostnetwork", "variants/deployment-hostnetwork.yaml", id="hostnetwork"),
        pytest.param("daemonset", "variants/daemonset-control-plane.yaml", id="daemonset"),
    ],
)
def test_the_chart_runs_the_ccm_like_the_plain_manifest(helm: Path, chart: str, plain: str) -> None:
    rendered, shipped = workload(render(helm, chart)), workload(manifest(plain))
    assert rendered["kind"] == shipped["kind"]
    assert accepted_settings(rendered) == accepted_settings(shipped)

    def essentials(obj: Obj) -> dict[str, Any]:
        spec, container = pod_spec(obj), ccm_container(obj)
        return {
            "hostNetwork": spec.get("hostNetwork", False),
            "podSecurity": spec["securityContext"],
            "priority": spec["priorityClassName"],
            "tolerations": sorted(json.dumps(t, sort_keys=True) for t in spec["tolerations"]),
            "security": container["securityContext"],
            "resources": container["resources"],
            "ports": container["ports"],
            "probes": [container[p]["httpGet"] for p in ("livenessProbe", "readinessProbe")],
            "affinity": spec.get("affinity"),
            "spread": spec.get("topologySpreadConstraints"),
            "dnsPolicy": spec["dnsPolicy"],
            "strategy": obj["spec"].get("strategy") or obj["spec"].get("updateStrategy"),
            "selector": obj["spec"]["selector"],
        }

    assert essentials(rendered) == essentials(shipped)


@pytest.mark.parametrize(
    ("set_values", "message"),
    [
        pytest.param(
            ["existingConfigSecret=mine", "envFromSecret=env"],
            "choose one configuration source, not existingConfigSecret + envFromSecret",
            id="existing-secret-and-env",
        ),
        pytest.param(
            ["config.url=https://xo", "config.token=t", "envFromSecret=env"],
            "choose one configuration source, not config + envFromSecret",
            id="inline-and-env",
        ),
        pytest.param(
            ["leaderElection.enabled=false", "replicaCount=2"],
            "leaderElection.enabled=false is only safe with replicaCount=1 and useDaemonSet=false",
            id="no-leader-election-with-two-replicas",
        ),
        pytest.param(
            ["leaderElection.enabled=false", "useDaemonSet=true"],
            "leaderElection.enabled=false is only safe with replicaCount=1 and useDaemonSet=false",
            id="no-leader-election-in-daemonset-mode",
        ),
        pytest.param(
            ["config.url=https://xo", "config.token=t", "config.username=u", "config.password=p"],
            "config: token is not allowed when username and password are set",
            id="inline-token-and-credentials",
        ),
        pytest.param(
            ["config.url=https://xo", "config.username=u"],
            "config: either token or username/password are required for authentication",
            id="inline-username-without-password",
        ),
        pytest.param(["config.token=t"], "config: url is required", id="inline-without-url"),
        pytest.param(
            ["config.url=https://xo", "config.token=t", "credentialsSecret.name=s"],
            "config.token and credentialsSecret: choose one (credentialsSecret sets tokenFile)",
            id="inline-token-and-credentials-secret",
        ),
        pytest.param(
            [
                "config.url=https://xo",
                "config.username=u",
                "config.password=p",
                "credentialsSecret.name=s",
                "credentialsSecret.passwordKey=pw",
            ],
            "config.password and credentialsSecret: choose one (credentialsSecret sets "
            "passwordFile)",
            id="inline-password-and-credentials-secret",
        ),
        pytest.param(
            ["config.url=https://xo", "config.token=t", "config.tokenFile=/f"],
            "config: token and tokenFile exclude each other: set one",
            id="inline-token-and-token-file",
        ),
        pytest.param(["logVerbosityLevel=five"], "logVerbosityLevel", id="mistyped-value"),
        pytest.param(["useHostNetwrok=true"], "useHostNetwrok", id="unknown-key"),
        pytest.param(["image.tagg=v1"], "tagg", id="unknown-nested-key"),
        pytest.param(
            ["config.url=https://xo", "config.token=t", "topology.zoneSource=rack"],
            "value must be one of '', 'host', 'hostTag', 'pool', 'none'",
            id="unknown-zone-source",
        ),
        pytest.param(
            ["config.url=https://xo", "config.token=t", "topology.zoneTag=k8s.zone=a"],
            "zoneTag",
            id="zone-tag-with-a-value",
        ),
        pytest.param(
            ["existingConfigSecret=mine", "topology.zoneSource=hostTag"],
            "topology.* needs the chart's config; with existingConfigSecret put zoneSource in "
            "that configuration instead",
            id="topology-with-an-existing-secret",
        ),
        pytest.param(
            ["envFromSecret=env", "topology.regionSource=none"],
            "topology.* needs the chart's config; with envFromSecret put regionSource",
            id="topology-with-env",
        ),
        pytest.param(
            [
                "config.url=https://xo",
                "config.token=t",
                "config.zoneSource=host",
                "topology.zoneSource=hostTag",
            ],
            "topology.zoneSource=hostTag and config.zoneSource=host disagree: set it in one place",
            id="topology-against-config",
        ),
    ],
)
def test_contradictory_or_unknown_values_fail_the_render_naming_them(
    helm: Path, set_values: list[str], message: str
) -> None:
    with pytest.raises(RenderError) as refused:
        helm_template(helm, set_values=set_values)
    assert message in str(refused.value)


def test_a_token_beside_a_lone_username_renders_as_go_accepts_it(helm: Path) -> None:
    docs = helm_template(
        helm, set_values=["config.url=https://xo", "config.token=t", "config.username=u"]
    )
    secret = only(docs, "Secret")
    config = parse_config(yaml.safe_load(secret["stringData"]["config.yaml"]), origin="chart")
    assert config.uses_token


def test_existing_secret_wins_over_config_as_in_the_go_chart(helm: Path) -> None:
    docs = helm_template(
        helm,
        set_values=["config.url=https://xo", "config.token=t", "existingConfigSecret=mine"],
    )
    assert of_kind(docs, "Secret") == []
    assert volume(workload(docs), "cloud-config")["secret"]["secretName"] == "mine"  # type: ignore[index]


def test_topology_values_reach_the_cloud_config_and_empty_ones_leave_it_alone(
    helm: Path,
) -> None:
    base = ["config.url=https://xo", "config.token=t"]
    chosen = helm_template(
        helm,
        set_values=[*base, "topology.zoneSource=hostTag", "topology.regionSource=none"],
    )
    untouched = helm_template(helm, set_values=base)

    written = yaml.safe_load(only(chosen, "Secret")["stringData"]["config.yaml"])
    topology = parse_config(written, origin="chart").options().topology
    assert (topology.zone_source.value, topology.zone_tag) == ("hostTag", "k8s.zone")
    assert topology.region_source.value == "none"
    default = yaml.safe_load(only(untouched, "Secret")["stringData"]["config.yaml"])
    assert default == {"url": "https://xo", "token": "t"}  # drop-in: the Go chart's Secret


def test_every_value_is_in_the_schema_and_the_readme() -> None:
    import re

    from .chart import CHART

    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    readme = (CHART / "README.md").read_text(encoding="utf-8")
    assert set(values) == set(schema["properties"])
    for key in values:
        assert re.search(rf"`{key}[`.]", readme), f"{key} is not in the chart README"
