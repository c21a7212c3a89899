"""The Kubernetes cloud-controller-manager flags, parsed and validated.

The command line is the Go CCM's (:mod:`entrypoints.flags.table` knows every one
of its flags, :mod:`entrypoints.flags.pflag` parses them as pflag does); this module
turns it into ``Settings`` and applies Go's validation rules, so a Go manifest
starts this CCM unchanged and a value Go refuses is refused here with one line.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

from application.controllers import ALL_CONTROLLERS, DEFAULT_CONTROLLERS, DISABLED_BY_DEFAULT
from entrypoints.flags.pflag import GoFlagError, ParsedFlags, go_bool, go_duration
from entrypoints.flags.table import FLAGS

#: Canonical controller names (``k8s.io/cloud-provider/names`` and the Go CCM's
#: label-sync controller) -> this CCM's controller names.
CANONICAL_CONTROLLERS = {
    "cloud-node-controller": "cloud-node",
    "cloud-node-lifecycle-controller": "cloud-node-lifecycle",
    "cloud-node-label-sync-controller": "cloud-node-label-sync",
    "cloud-node-csr-approval-controller": "cloud-node-csr-approval",
}
#: Aliases Go resolves to controllers the Go CCM removed (its route and service
#: controllers): named, they are refused as unknown, as Go refuses them.
_GO_ALIASES = {
    "cloud-node": "cloud-node-controller",
    "cloud-node-lifecycle": "cloud-node-lifecycle-controller",
    "cloud-node-label-sync": "cloud-node-label-sync-controller",
    "cloud-node-csr-approval": "cloud-node-csr-approval-controller",
    "service": "service-lb-controller",
    "route": "node-route-controller",
}
#: Go names of the TLS 1.2 suites OpenSSL can serve, with OpenSSL's names.
#: TLS 1.3 suites are always on (Go ignores them in this flag too).
TLS_CIPHERS = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": "ECDHE-ECDSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": "ECDHE-RSA-AES128-SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256": "AES128-SHA256",
}
TLS13_CIPHERS = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")
TLS_VERSIONS = ("VersionTLS10", "VersionTLS11", "VersionTLS12", "VersionTLS13")
CONTENT_TYPES = ("application/json", "application/vnd.kubernetes.protobuf")


class FlagError(ValueError):
    """Flags that parse but do not make sense (together); the message is one line."""


def parse_duration(text: str) -> float:
    """A Go duration in seconds, for argparse (``doctor``)."""
    try:
        return go_duration(text.strip())
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def parse_bool(text: str) -> bool:
    """A boolean for argparse (``doctor``): Go's spellings, and yes/no."""
    value = text.strip()
    if value.lower() in ("yes", "no"):
        return value.lower() == "yes"
    try:
        return go_bool(value if value in ("true", "false") else value.lower())
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _controller(name: str) -> str | None:
    """This CCM's name of a controller named by its alias or canonical name."""
    if name in ALL_CONTROLLERS:
        return name
    return CANONICAL_CONTROLLERS.get(name)


def resolve_controllers(items: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``--controllers`` as Go reads it: ``*`` for all but the disabled-by-default
    ones, ``name`` to enable, ``-name`` to disable, aliases and canonical names alike;
    the first mention of a controller decides (``IsControllerEnabled``)."""
    for item in items:
        name = item.removeprefix("-")
        if item != "*" and _controller(name) is None:
            known = ", ".join(f"{a} ({c})" for a, c in list(_GO_ALIASES.items())[:4])
            raise FlagError(
                f'--controllers: "{name}" is not in the list of known controllers '
                f"(known: {known}, or *)"
            )
    enabled = []
    for controller in ALL_CONTROLLERS:
        decided = None
        star = False
        for item in items:
            if item == "*":
                star = True
            elif _controller(item.removeprefix("-")) == controller:
                decided = not item.startswith("-")
                break
        if decided or (decided is None and star and controller not in DISABLED_BY_DEFAULT):
            enabled.append(controller)
    return tuple(enabled)


def parse_controllers(text: str) -> tuple[str, ...]:
    """``--controllers`` from its comma-separated text."""
    return resolve_controllers([c.strip() for c in text.split(",") if c.strip()])


@dataclass(frozen=True)
class Settings:
    """The process settings, one field per flag (durations in seconds)."""

    cloud_provider: str = "xenorchestra"
    cloud_config: str | None = None
    controllers: tuple[str, ...] = DEFAULT_CONTROLLERS
    leader_elect: bool = True
    leader_elect_lease_duration: float = 15.0
    leader_elect_renew_deadline: float = 10.0
    leader_elect_retry_period: float = 2.0
    leader_elect_resource_name: str = "cloud-controller-manager"
    leader_elect_resource_namespace: str = "kube-system"
    concurrent_node_syncs: int = 1
    node_status_update_frequency: float = 300.0
    node_monitor_period: float = 5.0
    #: ``--kube-api-qps`` / ``--kube-api-burst``: the controllers' request budget, the
    #: one source of the Kubernetes client's (``adapter_builders.kube_client_settings``).
    kube_api_qps: float = FLAGS.default("kube-api-qps")
    kube_api_burst: int = FLAGS.default("kube-api-burst")
    kubeconfig: str | None = None
    secure_port: int = 10258
    bind_address: str = "0.0.0.0"
    tls_cert_file: str | None = None
    tls_private_key_file: str | None = None
    v: int = 2
    log_format: str = "text"
    dry_run_deletions: bool = False
    #: ``--event-qps`` / ``--event-burst`` (this CCM's, kubelet's defaults): the node
    #: events' own request budget, apart from ``--kube-api-qps``.
    event_qps: float = FLAGS.default("event-qps")
    event_burst: int = FLAGS.default("event-burst")
    extra: dict[str, str] = field(default_factory=dict)
    # -- the rest of the Go CCM's flags with a meaning here
    cluster_name: str = "kubernetes"
    leader_elect_resource_lock: str = "leases"
    controller_start_interval: float = 0.0
    concurrent_node_status_updates: int = 0
    min_resync_period: float = 43200.0
    kube_api_content_type: str = "application/vnd.kubernetes.protobuf"
    master: str | None = None
    cert_dir: str | None = None
    tls_cipher_suites: tuple[str, ...] = ()
    tls_min_version: str = ""
    tls_sni_cert_key: tuple[tuple[str, str, tuple[str, ...]], ...] = ()
    permit_port_sharing: bool = False
    client_ca_file: str | None = None
    authentication_kubeconfig: str | None = None
    authentication_skip_lookup: bool = False
    authentication_token_webhook_cache_ttl: float = 10.0
    authentication_tolerate_lookup_failure: bool = False
    authorization_kubeconfig: str | None = None
    authorization_always_allow_paths: tuple[str, ...] = ("/healthz", "/readyz", "/livez")
    authorization_webhook_cache_authorized_ttl: float = 10.0
    authorization_webhook_cache_unauthorized_ttl: float = 10.0
    #: Flags given that have no effect here (logged once at --v=2).
    no_effect: tuple[str, ...] = ()
    #: ``--version``: "false", "true", "raw", or a version string to print.
    version: str = "false"

    @property
    def status_update_workers(self) -> int:
        """Address-sync workers: ``--concurrent-node-status-updates``, else
        ``--concurrent-node-syncs`` (Go's backwards-compatible rule)."""
        return self.concurrent_node_status_updates or self.concurrent_node_syncs

    @property
    def api_request_workers(self) -> int:
        """Threads of the Kubernetes client's pool: see :func:`requests_in_flight`."""
        return requests_in_flight(self.concurrent_node_syncs, self.status_update_workers)


#: ``--concurrent-node-syncs`` when not given: one worker per this many QPS, within bounds.
QPS_PER_WORKER = 20.0
MAX_SIZED_WORKERS = 32


def workers_for_qps(qps: float) -> int:
    """The cloud-node workers when ``--concurrent-node-syncs`` is not given:
    ``max(1, min(32, floor(qps / 20)))``. A worker keeps about 20 requests per
    second busy (two per node, each a round trip), so the workers follow the
    budget: Go's 1 at the default 20 QPS, 25 at 500."""
    return max(1, min(MAX_SIZED_WORKERS, int(qps // QPS_PER_WORKER)))


#: From this ``--kube-api-qps`` on, the controller process runs on uvloop.
UVLOOP_FROM_QPS = 100.0


def event_loop_for(qps: float, asked: str = "") -> str:
    """``uvloop`` or ``asyncio``: the loop the controller process runs on.

    ``asked`` (``XOCCM_EVENT_LOOP``) decides when it names one; empty or ``auto``
    leave it to the budget, anything else is a ValueError naming it. Otherwise the
    request budget does, as it sizes the workers: below 100 QPS (the Go default
    is 20) registration waits on the client rate limit, so a cheaper loop buys
    no time, and the standard loop holds 1.4 MiB less for the Pod's whole life
    (measured, 200 nodes at the defaults); from 100 QPS on, CPU per node is what
    a burst costs, and uvloop spends about 6 % less of it."""
    choice = asked.strip().lower()
    if choice in ("uvloop", "asyncio"):
        return choice
    if choice not in ("", "auto"):
        raise ValueError(f"XOCCM_EVENT_LOOP={asked!r}: expected uvloop, asyncio or auto")
    return "uvloop" if qps >= UVLOOP_FROM_QPS else "asyncio"


#: The Kubernetes client's threads: never fewer than the controllers' default need, and
#: bounded, since each is a thread and a connection held open.
MIN_REQUEST_WORKERS = 4
MAX_REQUEST_WORKERS = 64


def requests_in_flight(node_syncs: int, status_updates: int) -> int:
    """How many API requests the controllers may have in flight at once, each worker
    one at a time: the cloud-node workers, the address-sync workers, and the
    lifecycle and label-sync passes (one each). The client gets that many threads, so
    no worker waits for another's request to end before sending its own (with 10
    node-sync workers a pool of 4 held registration to 4 requests in flight):
    ``max(4, min(64, node_syncs + status_updates + 2))``, 4 at the defaults."""
    wanted = node_syncs + status_updates + 2
    return max(MIN_REQUEST_WORKERS, min(MAX_REQUEST_WORKERS, wanted))


class HelpRequested(Exception):
    """``--help``/``-h`` was given."""


def parse_command_line(argv: list[str] | tuple[str, ...]) -> Settings:
    """The Settings of a CCM command line; FlagError (one line) when it is refused.

    Raises HelpRequested for ``--help``.
    """
    try:
        parsed = FLAGS.parse(argv)
    except GoFlagError as err:
        raise FlagError(str(err)) from None
    if parsed["help"]:
        raise HelpRequested
    refused = FLAGS.refusals(parsed)
    if refused:
        raise FlagError(refused[0])
    return settings_from_flags(parsed)


def _none_if_empty(value: str) -> str | None:
    return value or None


def settings_from_flags(parsed: ParsedFlags) -> Settings:
    values: dict[str, Any] = {}
    for flag in FLAGS.by_name.values():
        if flag.field is None:
            continue
        # --logging-format and --log-format share a field: the one given wins.
        if flag.field in values and not parsed.was_set(flag.name):
            continue
        values[flag.field] = parsed[flag.name]
    for key in (
        "cloud_config",
        "kubeconfig",
        "tls_cert_file",
        "tls_private_key_file",
        "master",
        "cert_dir",
        "client_ca_file",
        "authentication_kubeconfig",
        "authorization_kubeconfig",
    ):
        values[key] = _none_if_empty(values[key])
    values["cloud_provider"] = values["cloud_provider"] or "xenorchestra"
    values["controllers"] = resolve_controllers(values["controllers"])
    values["v"] = min(int(values["v"]), 10)  # klog accepts any level; 10 is the most verbose
    values["no_effect"] = tuple(FLAGS.without_effect(parsed))
    if not parsed.was_set("concurrent-node-syncs") and values["kube_api_qps"] > 0:
        values["concurrent_node_syncs"] = workers_for_qps(values["kube_api_qps"])
    settings = Settings(**values)
    validate(settings, parsed)
    return settings


def validate(s: Settings, parsed: ParsedFlags | None = None) -> None:
    """Go's validation rules (FlagError on the first broken one)."""
    if s.cloud_provider != "xenorchestra":
        raise FlagError(
            f"--cloud-provider={s.cloud_provider}: this binary only provides 'xenorchestra'"
        )
    if not 0 <= s.secure_port <= 65535:
        raise FlagError(
            f"--secure-port {s.secure_port} must be between 0 and 65535, inclusive. "
            "0 for turning off secure port"
        )
    if not s.controllers:
        raise FlagError("--controllers leaves no controller to run")
    if s.leader_elect and s.leader_elect_resource_lock != "leases":
        raise FlagError('--leader-elect-resource-lock: resourceLock value must be "leases"')
    if s.leader_elect:
        lease, renew, retry = (
            s.leader_elect_lease_duration,
            s.leader_elect_renew_deadline,
            s.leader_elect_retry_period,
        )
        if min(lease, renew, retry) <= 0 or lease <= renew or renew <= 1.2 * retry:
            raise FlagError(
                "leader election needs lease duration > renew deadline > 1.2 x retry period "
                f"(got {lease:g}s, {renew:g}s, {retry:g}s)"
            )
    for name, value in (
        ("--node-monitor-period", s.node_monitor_period),
        ("--node-status-update-frequency", s.node_status_update_frequency),
    ):
        if value <= 0:
            raise FlagError(f"{name} must be positive")
    for name, value in (
        ("--min-resync-period", s.min_resync_period),
        ("--controller-start-interval", s.controller_start_interval),
        ("--authentication-token-webhook-cache-ttl", s.authentication_token_webhook_cache_ttl),
        (
            "--authorization-webhook-cache-authorized-ttl",
            s.authorization_webhook_cache_authorized_ttl,
        ),
        (
            "--authorization-webhook-cache-unauthorized-ttl",
            s.authorization_webhook_cache_unauthorized_ttl,
        ),
    ):
        if value < 0:
            raise FlagError(f"{name} cannot be negative")
    if s.concurrent_node_syncs <= 0:
        raise FlagError("--concurrent-node-syncs must be a positive number")
    if s.concurrent_node_status_updates < 0:
        raise FlagError("--concurrent-node-status-updates cannot be a negative number")
    if s.kube_api_qps <= 0:
        raise FlagError(f"--kube-api-qps={s.kube_api_qps:g}: must be positive")
    if s.kube_api_burst < 1:
        raise FlagError(f"--kube-api-burst={s.kube_api_burst}: must be at least 1")
    if s.event_qps < 0:
        raise FlagError(f"--event-qps={s.event_qps:g}: must not be negative")
    if s.event_burst < 0 or (s.event_qps > 0 and s.event_burst < 1):
        raise FlagError(f"--event-burst={s.event_burst}: must be at least 1 (with --event-qps > 0)")
    if s.kube_api_content_type not in CONTENT_TYPES:
        raise FlagError(
            f"--kube-api-content-type={s.kube_api_content_type}: use {' or '.join(CONTENT_TYPES)}"
        )
    if bool(s.tls_cert_file) != bool(s.tls_private_key_file):
        raise FlagError("--tls-cert-file and --tls-private-key-file go together")
    if s.tls_min_version and s.tls_min_version not in TLS_VERSIONS:
        raise FlagError(
            f"--tls-min-version: unknown tls version {s.tls_min_version!r} "
            f"(possible values: {', '.join(TLS_VERSIONS)})"
        )
    for suite in s.tls_cipher_suites:
        if suite not in TLS_CIPHERS and suite not in TLS13_CIPHERS:
            raise FlagError(
                f"--tls-cipher-suites: cipher suite {suite} not supported or doesn't exist"
            )
    if s.log_format not in ("text", "json"):
        raise FlagError(f"--logging-format={s.log_format}: use text or json")
    for path in s.authorization_always_allow_paths:
        trimmed = path.removeprefix("/")
        if "*" in trimmed[:-1]:
            raise FlagError(
                f"--authorization-always-allow-paths: only trailing * allowed in {path!r}"
            )
    if parsed is not None:
        webhook_port = int(parsed["webhook-secure-port"])
        if not 0 <= webhook_port <= 65535:
            raise FlagError(
                f"--webhook-secure-port {webhook_port} must be between 0 and 65535, inclusive"
            )
        if webhook_port == s.secure_port and webhook_port != 0:
            raise FlagError("--webhook-secure-port cannot be the same value as --secure-port")
