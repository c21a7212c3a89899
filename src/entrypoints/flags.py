"""The Kubernetes cloud-controller-manager flags, parsed and validated.

Same names, same defaults and the same ``--flag=value`` forms as every CCM
built on ``k8s.io/cloud-provider``, so Deployment manifests carry over.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field

from application.controllers import ALL_CONTROLLERS

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """A Go duration (``15s``, ``5m``, ``1m30s``, ``500ms``) in seconds."""
    raw = text.strip()
    if raw == "0":
        return 0.0
    pos, total = 0, 0.0
    for match in _DURATION.finditer(raw):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT[match.group(2)]
        pos = match.end()
    if pos != len(raw) or not raw:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (use e.g. 15s, 5m, 1m30s)")
    return total


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1", "t", "yes"):
        return True
    if value in ("false", "0", "f", "no"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean {text!r} (use true or false)")


def parse_controllers(text: str) -> tuple[str, ...]:
    """``*`` (all), names, and ``-name`` to disable one, as kube's ``--controllers``."""
    items = [c.strip() for c in text.split(",") if c.strip()]
    enabled: list[str] = []
    disabled = {c[1:] for c in items if c.startswith("-")}
    for item in items:
        name = item.lstrip("-")
        if item != "*" and name not in ALL_CONTROLLERS:
            raise argparse.ArgumentTypeError(
                f"unknown controller {name!r} (known: {', '.join(ALL_CONTROLLERS)}, or *)"
            )
    if "*" in items:
        enabled = [c for c in ALL_CONTROLLERS if c not in disabled]
    enabled += [c for c in items if c in ALL_CONTROLLERS and c not in enabled]
    return tuple(c for c in ALL_CONTROLLERS if c in enabled and c not in disabled)


def _positive(kind: type[int] | type[float], minimum: float):  # type: ignore[no-untyped-def]
    def convert(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text} is below the minimum {minimum}")
        return value

    return convert


@dataclass(frozen=True)
class Settings:
    """The process settings, one field per flag (durations in seconds)."""

    cloud_provider: str = "xenorchestra"
    cloud_config: str | None = None
    controllers: tuple[str, ...] = ALL_CONTROLLERS
    leader_elect: bool = True
    leader_elect_lease_duration: float = 15.0
    leader_elect_renew_deadline: float = 10.0
    leader_elect_retry_period: float = 2.0
    leader_elect_resource_name: str = "cloud-controller-manager"
    leader_elect_resource_namespace: str = "kube-system"
    concurrent_node_syncs: int = 1
    node_status_update_frequency: float = 300.0
    node_monitor_period: float = 5.0
    kube_api_qps: float = 20.0
    kube_api_burst: int = 30
    kubeconfig: str | None = None
    secure_port: int = 10258
    bind_address: str = "0.0.0.0"
    tls_cert_file: str | None = None
    tls_private_key_file: str | None = None
    v: int = 2
    log_format: str = "text"
    dry_run_deletions: bool = False
    extra: dict[str, str] = field(default_factory=dict)


def add_flags(parser: argparse.ArgumentParser) -> None:
    d = Settings()
    a = parser.add_argument
    a(
        "--cloud-provider",
        default=d.cloud_provider,
        help="must be 'xenorchestra' (default %(default)s)",
    )
    a("--cloud-config", default=None, help="path of the XO config YAML (else the XOA_* variables)")
    a(
        "--controllers",
        type=parse_controllers,
        default=d.controllers,
        help="controllers to run: '*' for all, a name to enable, '-name' to disable "
        f"({', '.join(ALL_CONTROLLERS)}; default *)",
    )
    a(
        "--leader-elect",
        type=parse_bool,
        nargs="?",
        const=True,
        default=d.leader_elect,
        help="default true",
    )
    a(
        "--leader-elect-lease-duration",
        type=parse_duration,
        default=d.leader_elect_lease_duration,
        help="default 15s",
    )
    a(
        "--leader-elect-renew-deadline",
        type=parse_duration,
        default=d.leader_elect_renew_deadline,
        help="default 10s",
    )
    a(
        "--leader-elect-retry-period",
        type=parse_duration,
        default=d.leader_elect_retry_period,
        help="default 2s",
    )
    a(
        "--leader-elect-resource-name",
        default=d.leader_elect_resource_name,
        help="Lease name (default %(default)s)",
    )
    a(
        "--leader-elect-resource-namespace",
        default=d.leader_elect_resource_namespace,
        help="default %(default)s",
    )
    a(
        "--concurrent-node-syncs",
        type=_positive(int, 1),
        default=d.concurrent_node_syncs,
        help="cloud-node workers (default 1)",
    )
    a(
        "--node-status-update-frequency",
        type=parse_duration,
        default=d.node_status_update_frequency,
        help="address and label sync period (default 5m)",
    )
    a(
        "--node-monitor-period",
        type=parse_duration,
        default=d.node_monitor_period,
        help="lifecycle period (default 5s)",
    )
    a("--kube-api-qps", type=_positive(float, 0.001), default=d.kube_api_qps, help="default 20")
    a("--kube-api-burst", type=_positive(int, 1), default=d.kube_api_burst, help="default 30")
    a("--kubeconfig", default=None, help="kubeconfig path (default: in-cluster config)")
    a(
        "--secure-port",
        type=_positive(int, 0),
        default=d.secure_port,
        help="health and metrics port (default 10258)",
    )
    a("--bind-address", default=d.bind_address, help="default %(default)s")
    a(
        "--tls-cert-file",
        default=None,
        help="serve health and metrics over TLS with this certificate",
    )
    a("--tls-private-key-file", default=None, help="the key of --tls-cert-file")
    a(
        "--v",
        "-v",
        type=_positive(int, 0),
        default=d.v,
        help="log verbosity 0-10 (klog levels; default 2)",
    )
    a("--log-format", choices=("text", "json"), default=d.log_format, help="default text")
    a(
        "--dry-run-deletions",
        type=parse_bool,
        nargs="?",
        const=True,
        default=d.dry_run_deletions,
        help="never delete a Node: log and record an event instead (default false)",
    )


class FlagError(ValueError):
    """Flags that parse but do not make sense together."""


def settings_from_args(args: argparse.Namespace) -> Settings:
    s = Settings(**{k: v for k, v in vars(args).items() if k in Settings.__dataclass_fields__})
    if s.cloud_provider != "xenorchestra":
        raise FlagError(
            f"--cloud-provider={s.cloud_provider}: this binary only provides 'xenorchestra'"
        )
    if s.v > 10:
        raise FlagError(f"--v={s.v}: verbosity goes from 0 to 10")
    if s.secure_port > 65535:
        raise FlagError(f"--secure-port={s.secure_port}: not a TCP port")
    if not s.controllers:
        raise FlagError("--controllers leaves no controller to run")
    if s.leader_elect and not (
        0
        < s.leader_elect_retry_period
        < s.leader_elect_renew_deadline
        < s.leader_elect_lease_duration
    ):
        raise FlagError(
            "leader election needs retry period < renew deadline < lease duration "
            f"(got {s.leader_elect_retry_period}s, {s.leader_elect_renew_deadline}s, "
            f"{s.leader_elect_lease_duration}s)"
        )
    for name, value in (
        ("--node-monitor-period", s.node_monitor_period),
        ("--node-status-update-frequency", s.node_status_update_frequency),
    ):
        if value <= 0:
            raise FlagError(f"{name} must be positive")
    if bool(s.tls_cert_file) != bool(s.tls_private_key_file):
        raise FlagError("--tls-cert-file and --tls-private-key-file go together")
    return s
