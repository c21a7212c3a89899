"""/metrics serves what the Go CCM serves, under its names and types.

``tests/data/go-ccm-metrics.tsv`` lists the families the Go CCM v1.1.0 served (measured
by running it, see the file's header). Every one is served here too, but those below,
each with the reason it is not: dashboards and alerts written for the Go CCM read the
ones that describe the controllers' work, and those are all here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.observability.metrics import PrometheusMetrics

from .test_docs import exported

GO_METRICS = Path(__file__).resolve().parents[1] / "data" / "go-ccm-metrics.tsv"

_SERVING = "the Go binary's delegated authentication and authorization (k8s.io/apiserver)"
_REGISTRY = "component-base's bookkeeping of its own metrics registry"
_CLIENT_GO = "client-go internals this client has no counterpart of"
_PROCESS = "read by Go's process collector only (Python's reads CPU, memory, fds, start)"

#: Go families not served here, and why.
UNSERVED = {
    "aggregator_discovery_aggregation_count_total": _SERVING,
    "aggregator_discovery_nopeer_requests_total": _SERVING,
    "aggregator_discovery_peer_aggregated_cache_hits_total": _SERVING,
    "aggregator_discovery_peer_aggregated_cache_misses_total": _SERVING,
    "apiserver_audit_event_total": _SERVING,
    "apiserver_audit_requests_rejected_total": _SERVING,
    "apiserver_client_certificate_expiration_seconds": _SERVING,
    "apiserver_envelope_encryption_dek_cache_fill_percent": _SERVING,
    "apiserver_storage_data_key_generation_duration_seconds": _SERVING,
    "apiserver_storage_data_key_generation_failures_total": _SERVING,
    "apiserver_storage_envelope_transformation_cache_misses_total": _SERVING,
    "apiserver_validation_declarative_validation_mismatch_total": _SERVING,
    "apiserver_validation_declarative_validation_panic_total": _SERVING,
    "apiserver_validation_duplicate_validation_error_total": _SERVING,
    "apiserver_webhooks_x509_insecure_sha1_total": _SERVING,
    "apiserver_webhooks_x509_missing_san_total": _SERVING,
    "authenticated_user_requests": _SERVING,
    "authentication_attempts": _SERVING,
    "authentication_duration_seconds": _SERVING,
    "authorization_attempts_total": _SERVING,
    "authorization_duration_seconds": _SERVING,
    "cardinality_enforcement_unexpected_categorizations_total": _REGISTRY,
    "disabled_metrics_total": _REGISTRY,
    "hidden_metrics_total": _REGISTRY,
    "registered_metrics_total": _REGISTRY,
    "kubernetes_build_info": "the Kubernetes release a Go binary was built from (python_info here)",
    "process_network_receive_bytes_total": _PROCESS,
    "process_network_transmit_bytes_total": _PROCESS,
    "process_virtual_memory_max_bytes": _PROCESS,
    "rest_client_exec_plugin_certificate_rotation_age": _CLIENT_GO,
    "rest_client_exec_plugin_ttl_seconds": _CLIENT_GO,
    "rest_client_transport_cache_entries": _CLIENT_GO,
    "rest_client_transport_cert_rotation_gc_calls_total": _CLIENT_GO,
    "rest_client_transport_create_calls_total": _CLIENT_GO,
    "rest_client_request_size_bytes": "request and answer sizes are not measured",
    "rest_client_response_size_bytes": "request and answer sizes are not measured",
}


def go_families() -> dict[str, str]:
    rows = (line.split("\t") for line in GO_METRICS.read_text().splitlines())
    return {row[0]: row[1] for row in rows if row[0] and not row[0].startswith("#")}


def served() -> dict[str, str]:
    families = {name: kind for name, (kind, _) in exported().items()}
    process = PrometheusMetrics(process_metrics=True)
    for family in process.registry.collect():
        families.setdefault(
            family.name + ("_total" if family.type == "counter" else ""), family.type
        )
    return families


@pytest.mark.parametrize("name", sorted(set(go_families()) - set(UNSERVED)))
def test_each_family_the_go_ccm_serves_is_served_here_with_its_type(name: str) -> None:
    assert served().get(name) == go_families()[name]


def test_what_is_not_served_is_the_go_ccm_s_and_really_missing_here() -> None:
    assert set(UNSERVED) <= set(go_families())  # no reason kept for a name Go never served
    assert not set(UNSERVED) & set(served())  # nor for one served after all
