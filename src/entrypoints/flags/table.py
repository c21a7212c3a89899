"""Every flag of the Go CCM v1.1.0 (``k8s.io/cloud-provider`` 0.36) with its type,
default and class here, in the order of its ``--help``, plus this CCM's own.

A flag's default is written once, in its row: :class:`~entrypoints.flags.settings.Settings`
takes its defaults from here."""

from __future__ import annotations

from typing import Any

from entrypoints.flags.pflag import (
    DURATION,
    IMPLEMENTED,
    NO_EFFECT,
    REFUSED,
    FlagClass,
    FlagSet,
    GoFlag,
    flag,
    refuse_true,
)

_f, _DUR = flag, DURATION
_I, _N, _R = IMPLEMENTED, NO_EFFECT, REFUSED
_refuse_true = refuse_true


def _refuse_webhooks(value: Any) -> str | None:
    names = [n.lstrip("-") for n in value if n != "*"]
    if names:
        return (
            f"webhook {names[0]!r} is not in the list of known webhooks "
            "(this CCM provides none, like the Go CCM)"
        )
    return None


#: Every flag of the Go CCM's ``--help``, in its order, plus two hidden deprecated ones.
GO_FLAGS: tuple[GoFlag, ...] = (
    # -- debugging
    _f("contention-profiling", "bool", False, _N, "Go lock profiling (no Go runtime here)"),
    _f("profiling", "bool", True, _N, "Go pprof handlers (no Go runtime here)"),
    # -- leader migration
    _f(
        "enable-leader-migration",
        "bool",
        False,
        _R,
        "migrating controllers between controller managers",
        refuse=_refuse_true("leader migration is not supported: run one CCM per Lease"),
    ),
    _f("leader-migration-config", "string", "", _N, "only read with --enable-leader-migration"),
    # -- generic
    _f(
        "allocate-node-cidrs",
        "bool",
        False,
        _R,
        "allocate pod CIDRs to nodes",
        refuse=_refuse_true(
            "allocating node CIDRs is not done by this CCM (nor by the Go CCM): "
            "let kube-controller-manager or the CNI allocate them"
        ),
    ),
    _f("cidr-allocator-type", "string", "RangeAllocator", _N, "only with --allocate-node-cidrs"),
    _f("cloud-config", "string", "", _I, "XO config YAML (else XOA_* variables)", "cloud_config"),
    _f("cloud-provider", "string", "", _I, "must be xenorchestra", "cloud_provider"),
    _f("cluster-cidr", "string", "", _N, "only with --allocate-node-cidrs"),
    _f("cluster-name", "string", "kubernetes", _I, "cluster name, logged at start", "cluster_name"),
    _f(
        "configure-cloud-routes",
        "bool",
        True,
        _N,
        "routes need the route controller, which neither CCM has",
    ),
    _f(
        "controller-start-interval",
        _DUR,
        0.0,
        _I,
        "pause (jittered) between starting controllers",
        "controller_start_interval",
    ),
    _f(
        "controllers",
        "strings",
        ("*",),
        _I,
        "controllers to run (* , name, -name; * leaves cloud-node-csr-approval off)",
        "controllers",
    ),
    _f("external-cloud-volume-plugin", "string", "", _N, "in-tree volume plugins only"),
    _f("feature-gates", "mapStringBool", {}, _N, "Kubernetes feature gates (none apply here)"),
    _f("kube-api-burst", "int32", 30, _I, "API client burst", "kube_api_burst"),
    _f(
        "kube-api-content-type",
        "string",
        "application/vnd.kubernetes.protobuf",
        _I,
        "content type of requests (JSON is sent; protobuf is accepted as a request for it)",
        "kube_api_content_type",
    ),
    _f("kube-api-qps", "float32", 20.0, _I, "API client QPS", "kube_api_qps"),
    _f("leader-elect", "bool", True, _I, "leader election", "leader_elect"),
    _f(
        "leader-elect-lease-duration",
        _DUR,
        15.0,
        _I,
        "lease duration",
        "leader_elect_lease_duration",
    ),
    _f(
        "leader-elect-renew-deadline",
        _DUR,
        10.0,
        _I,
        "renew deadline",
        "leader_elect_renew_deadline",
    ),
    _f(
        "leader-elect-resource-lock",
        "string",
        "leases",
        _I,
        "lock kind: only leases (as Go)",
        "leader_elect_resource_lock",
    ),
    _f(
        "leader-elect-resource-name",
        "string",
        "cloud-controller-manager",
        _I,
        "Lease name",
        "leader_elect_resource_name",
    ),
    _f(
        "leader-elect-resource-namespace",
        "string",
        "kube-system",
        _I,
        "Lease namespace",
        "leader_elect_resource_namespace",
    ),
    _f(
        "leader-elect-retry-period",
        _DUR,
        2.0,
        _I,
        "retry period",
        "leader_elect_retry_period",
    ),
    _f(
        "min-resync-period",
        _DUR,
        43200.0,
        _I,
        "node cache resync: every node re-delivered after [p, 2p)",
        "min_resync_period",
    ),
    _f(
        "node-monitor-period",
        _DUR,
        5.0,
        _I,
        "cloud-node-lifecycle period",
        "node_monitor_period",
    ),
    _f(
        "route-reconciliation-period",
        _DUR,
        10.0,
        _N,
        "routes (no route controller)",
    ),
    _f(
        "use-service-account-credentials",
        "bool",
        False,
        _N,
        "one identity for all controllers here",
    ),
    _f(
        "allow-untagged-cloud",
        "bool",
        False,
        _N,
        "deprecated in Go; XO has no cluster tag",
        hidden=True,
    ),
    _f("node-sync-period", _DUR, 0.0, _N, "deprecated no-op in Go", hidden=True),
    # -- cloud-node controller
    _f(
        "concurrent-node-status-updates",
        "int32",
        0,
        _I,
        "address-sync workers (0: --concurrent-node-syncs)",
        "concurrent_node_status_updates",
    ),
    _f(
        "concurrent-node-syncs",
        "int32",
        1,
        _I,
        "cloud-node and label-sync workers (not given: max(1, min(32, qps/20)))",
        "concurrent_node_syncs",
    ),
    # -- service controller
    _f("concurrent-service-syncs", "int32", 1, _N, "load balancers (no service controller)"),
    # -- webhooks
    _f(
        "webhooks",
        "strings",
        (),
        _R,
        "cloud provider webhooks",
        refuse=_refuse_webhooks,
    ),
    _f("webhook-bind-address", "ip", "0.0.0.0", _N, "webhooks are never served"),
    _f("webhook-cert-dir", "string", "", _N, "webhooks are never served"),
    _f("webhook-disable-http2-serving", "bool", False, _N, "webhooks are never served"),
    _f("webhook-secure-port", "int", 10260, _N, "webhooks are never served"),
    _f("webhook-tls-cert-file", "string", "", _N, "webhooks are never served"),
    _f("webhook-tls-cipher-suites", "strings", (), _N, "webhooks are never served"),
    _f("webhook-tls-curve-preferences", "int32Slice", (), _N, "webhooks are never served"),
    _f("webhook-tls-min-version", "string", "", _N, "webhooks are never served"),
    _f("webhook-tls-private-key-file", "string", "", _N, "webhooks are never served"),
    _f("webhook-tls-sni-cert-key", "namedCertKey", (), _N, "webhooks are never served"),
    # -- secure serving (k8s.io/apiserver's serving and delegating options)
    _f("bind-address", "ip", "0.0.0.0", _I, "address of --secure-port", "bind_address"),
    _f("cert-dir", "string", "", _I, "where a generated certificate is kept", "cert_dir"),
    _f(
        "disable-http2-serving",
        "bool",
        False,
        _N,
        "HTTP/2 is never served here (HTTP/1.1 only)",
    ),
    _f(
        "http2-max-streams-per-connection",
        "int",
        0,
        _N,
        "HTTP/2 is never served here",
    ),
    _f(
        "permit-address-sharing",
        "bool",
        False,
        _N,
        "SO_REUSEADDR is always set, as Go sets it on Linux listeners",
    ),
    _f(
        "permit-port-sharing",
        "bool",
        False,
        _I,
        "SO_REUSEPORT on the secure port",
        "permit_port_sharing",
    ),
    _f("secure-port", "int", 10258, _I, "HTTPS port (0: off)", "secure_port"),
    _f("tls-cert-file", "string", "", _I, "serving certificate", "tls_cert_file"),
    _f(
        "tls-cipher-suites",
        "strings",
        (),
        _I,
        "TLS 1.2 cipher suites (Go names)",
        "tls_cipher_suites",
    ),
    _f(
        "tls-curve-preferences",
        "int32Slice",
        (),
        _N,
        "Go curve ids (OpenSSL picks curves here)",
    ),
    _f("tls-min-version", "string", "", _I, "VersionTLS12 or VersionTLS13", "tls_min_version"),
    _f(
        "tls-private-key-file",
        "string",
        "",
        _I,
        "key of --tls-cert-file",
        "tls_private_key_file",
    ),
    _f(
        "tls-sni-cert-key",
        "namedCertKey",
        (),
        _I,
        "extra certificates chosen by SNI name",
        "tls_sni_cert_key",
    ),
    # -- authentication
    _f(
        "authentication-kubeconfig",
        "string",
        "",
        _I,
        "kubeconfig for TokenReviews (else in-cluster)",
        "authentication_kubeconfig",
    ),
    _f(
        "authentication-skip-lookup",
        "bool",
        False,
        _I,
        "do not read the client CA from the cluster",
        "authentication_skip_lookup",
    ),
    _f(
        "authentication-token-webhook-cache-ttl",
        _DUR,
        10.0,
        _I,
        "TokenReview answer cache",
        "authentication_token_webhook_cache_ttl",
    ),
    _f(
        "authentication-tolerate-lookup-failure",
        "bool",
        False,
        _I,
        "start even if the cluster lookup fails",
        "authentication_tolerate_lookup_failure",
    ),
    _f(
        "client-ca-file",
        "string",
        "",
        _I,
        "CA bundle for x509 client certificates",
        "client_ca_file",
    ),
    _f("requestheader-allowed-names", "strings", (), _N, "front-proxy authentication"),
    _f("requestheader-client-ca-file", "string", "", _N, "front-proxy authentication"),
    _f(
        "requestheader-extra-headers-prefix",
        "strings",
        ("x-remote-extra-",),
        _N,
        "front-proxy authentication",
    ),
    _f(
        "requestheader-group-headers",
        "strings",
        ("x-remote-group",),
        _N,
        "front-proxy authentication",
    ),
    _f("requestheader-uid-headers", "strings", (), _N, "front-proxy authentication"),
    _f(
        "requestheader-username-headers",
        "strings",
        ("x-remote-user",),
        _N,
        "front-proxy authentication",
    ),
    # -- authorization
    _f(
        "authorization-always-allow-paths",
        "strings",
        ("/healthz", "/readyz", "/livez"),
        _I,
        "paths served without authorization",
        "authorization_always_allow_paths",
    ),
    _f(
        "authorization-kubeconfig",
        "string",
        "",
        _I,
        "kubeconfig for SubjectAccessReviews (else in-cluster)",
        "authorization_kubeconfig",
    ),
    _f(
        "authorization-webhook-cache-authorized-ttl",
        _DUR,
        10.0,
        _I,
        "cache of allowed reviews",
        "authorization_webhook_cache_authorized_ttl",
    ),
    _f(
        "authorization-webhook-cache-unauthorized-ttl",
        _DUR,
        10.0,
        _I,
        "cache of denied reviews",
        "authorization_webhook_cache_unauthorized_ttl",
    ),
    # -- misc
    _f("kubeconfig", "string", "", _I, "kubeconfig (else in-cluster)", "kubeconfig"),
    _f("master", "string", "", _I, "API server URL, overrides the kubeconfig's", "master"),
    _f(
        "node-status-update-frequency",
        _DUR,
        300.0,
        _I,
        "address and label sync period",
        "node_status_update_frequency",
    ),
    # -- global
    _f("help", "bool", False, _I, "print the flags and exit", shorthand="h"),
    _f("log-flush-frequency", _DUR, 5.0, _N, "logs are written at once here"),
    _f("log-text-info-buffer-size", "quantity", "", _N, "logs are written at once here"),
    _f("log-text-split-stream", "bool", False, _N, "all logs go to stderr here"),
    _f("logging-format", "string", "text", _I, "text or json (alias --log-format)", "log_format"),
    _f("v", "Level", 0, _I, "log verbosity 0-10", "v", shorthand="v"),
    _f("version", "version", "false", _I, "print the version and exit", "version"),
    _f("vmodule", "moduleSpec", "", _N, "per-file verbosity (loguru has none)"),
)

#: Flags of this CCM only (not in the Go binary).
OWN_FLAGS: tuple[GoFlag, ...] = (
    _f("log-format", "string", "text", _I, "text or json", "log_format"),
    _f(
        "dry-run-deletions",
        "bool",
        False,
        _I,
        "never delete a Node: log and record an event instead",
        "dry_run_deletions",
    ),
    _f(
        "event-qps",
        "int32",
        50,
        _I,
        "node events per second, a budget of their own (kubelet's flag; 0: unlimited)",
        "event_qps",
    ),
    _f(
        "event-burst",
        "int32",
        100,
        _I,
        "node events sent at once before --event-qps applies (kubelet's flag)",
        "event_burst",
    ),
)

#: The command line of this CCM: the Go flags, then its own.
FLAGS = FlagSet((*GO_FLAGS, *OWN_FLAGS))
BY_NAME: dict[str, GoFlag] = FLAGS.by_name


def classes() -> dict[str, FlagClass]:
    """Every Go flag's class, by name (``--help``'s flags and the hidden ones)."""
    return {f.name: f.klass for f in GO_FLAGS}
