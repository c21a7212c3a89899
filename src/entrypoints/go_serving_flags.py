"""The Go CCM's secure-serving, authentication and authorization flags
(``k8s.io/apiserver``'s serving and delegating options), in ``--help``'s order."""

from __future__ import annotations

from entrypoints.go_values import DURATION, IMPLEMENTED, NO_EFFECT, GoFlag, flag

_f, _DUR = flag, DURATION
_I, _N = IMPLEMENTED, NO_EFFECT

SERVING_FLAGS: tuple[GoFlag, ...] = (
    # -- secure serving
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
)
