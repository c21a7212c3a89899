"""The facts the shipped alerts and dashboard read, measured where they happen.

Controllers and services on the in-memory adapters and a fake clock report
through the Metrics port; the Prometheus adapter turns that into series that
exist from the start (a rule sees 0, not nothing).
"""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client.parser import text_string_to_metric_families

from adapters.memory import (
    FakeClock,
    InMemoryMetrics,
)
from adapters.observability import PrometheusMetrics
from adapters.observability.metrics import DELETION_OUTCOMES
from application.controllers import SYNC_RESULTS, QueueSettings, new_queue
from domain.errors import NodeStoreError
from domain.options import CCMOptions, DeletionOptions
from domain.policies.deletion_refusals import DeletionOutcome
from tests.world import ONE_POOL, World, controllers_world, vm_uuid

from .factories import node, vm


def _uuid(i: int) -> str:
    return vm_uuid(i)


def gone(count: int, deletion: DeletionOptions) -> World:
    """``count`` NotReady nodes whose VMs were deleted, and a lifecycle with ``deletion``."""
    world = World(ONE_POOL, options=CCMOptions(deletion=deletion))
    world.delete_vms(world.add_series(count))
    return world


async def test_deletions_are_counted_by_outcome_and_the_breaker_reports_its_state() -> None:
    lc = gone(8, DeletionOptions(confirm_delay=0))

    await lc.lifecycle.run_pass()

    # max(5, 10 % of 8): five deleted, then the breaker trips and refuses three
    assert lc.metrics.deletions == {"deleted": 5, "refused": 3}
    assert lc.metrics.breaker == (True, 5, 5)


async def test_the_breaker_window_empties_as_time_passes() -> None:
    lc = gone(2, DeletionOptions(confirm_delay=0, window=600))
    await lc.lifecycle.run_pass()
    assert lc.metrics.breaker == (False, 2, 5)
    await lc.clock.advance(601)
    await lc.lifecycle.run_pass()
    assert lc.metrics.breaker == (False, 0, 5)


async def test_dry_run_and_failed_deletions_are_counted_apart() -> None:
    dry = gone(1, DeletionOptions(confirm_delay=0, dry_run=True))
    await dry.lifecycle.check_by_name(name="n0")
    assert dry.metrics.deletions == {"dry-run": 1}

    failing = gone(1, DeletionOptions(confirm_delay=0))
    failing.nodes.fail_writes = NodeStoreError("API server down")
    await failing.lifecycle.check_by_name(name="n0")
    assert failing.metrics.deletions == {"failed": 1}
    assert failing.metrics.breaker == (False, 0, 5)  # the slot was given back


def test_the_deletion_outcomes_are_the_ones_the_adapter_creates_series_for() -> None:
    assert tuple(o.value for o in DeletionOutcome) == DELETION_OUTCOMES


async def test_the_cloud_node_controller_counts_waiting_and_unregistered_nodes() -> None:
    older = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
    newer = datetime(2026, 1, 1, 10, 5, tzinfo=UTC)
    async with controllers_world() as h:
        metrics: InMemoryMetrics = h.container.metrics()
        # No VM in XO yet: both nodes keep their uninitialized taint.
        h.nodes.create(node("w1", system_uuid=_uuid(1), created_at=newer))
        h.nodes.create(node("w2", system_uuid=_uuid(2), created_at=older))
        # A kubelet without --cloud-provider=external: no taint, no providerID, ever.
        h.nodes.create(node("w3", system_uuid=_uuid(3), taints=()))
        await h.clock.advance(10.0)
        assert metrics.waiting == (2, older)
        assert metrics.without_provider_id == 1

        h.xo.add_vm(vm(id=_uuid(2), name_label="w2"))
        h.xo.add_vm(vm(id=_uuid(1), name_label="w1"))
        await h.clock.advance(10.0)
        assert metrics.waiting == (0, None)


async def test_each_controller_declares_every_result_it_reports() -> None:
    async with controllers_world() as h:
        metrics: InMemoryMetrics = h.container.metrics()
        assert metrics.declared_node_syncs == {k: tuple(v) for k, v in SYNC_RESULTS.items()}
        h.nodes.create(node("w1", system_uuid=_uuid(1)))
        h.xo.add_vm(vm(id=_uuid(1), name_label="w1"))
        await h.clock.advance(30.0)
    counted = {key for key in metrics.counters if not key[0].startswith("queue_")}
    assert counted, "nothing was synced"
    for controller, result in counted:
        assert result in metrics.declared_node_syncs[controller], (controller, result)


def test_a_new_queue_reports_its_depth_at_once() -> None:
    metrics = InMemoryMetrics()
    new_queue("q", FakeClock(), metrics, QueueSettings())
    assert metrics.depths == {"q": 0}


def _samples(metrics: PrometheusMetrics) -> dict[str, set[tuple[tuple[str, str], ...]]]:
    text = metrics.render()[0].decode()
    out: dict[str, set[tuple[tuple[str, str], ...]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, set()).add(tuple(sorted(sample.labels.items())))
    return out


def test_labelled_series_exist_before_their_first_event() -> None:
    metrics = PrometheusMetrics(process_metrics=False)
    new_queue("cloud-node", FakeClock(), metrics, QueueSettings())
    metrics.declare_node_syncs(controller="cloud-node", results=("initialized", "error"))

    samples = _samples(metrics)

    assert samples["workqueue_retries_total"] == {(("name", "cloud-node"),)}
    assert samples["workqueue_adds_total"] == {(("name", "cloud-node"),)}
    assert samples["workqueue_depth"] == {(("name", "cloud-node"),)}
    assert samples["xenorchestra_ccm_node_syncs_total"] == {
        (("controller", "cloud-node"), ("result", "initialized")),
        (("controller", "cloud-node"), ("result", "error")),
    }
    assert {dict(s)["outcome"] for s in samples["xenorchestra_ccm_node_deletions_total"]} == set(
        DELETION_OUTCOMES
    )
    assert len(samples["xenorchestra_ccm_events_total"]) == 6  # Normal/Warning x 3 results
    assert len(samples["xenorchestra_event_stream_state"]) == 4


def test_the_oldest_waiting_node_reads_zero_when_none_waits() -> None:
    metrics = PrometheusMetrics(process_metrics=False)
    created = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)

    def oldest() -> float | None:
        return metrics.registry.get_sample_value(
            "xenorchestra_ccm_oldest_waiting_node_creation_timestamp_seconds"
        )

    metrics.nodes_waiting_initialization(count=3, oldest_created_at=created)
    assert oldest() == created.timestamp()
    metrics.nodes_waiting_initialization(count=0, oldest_created_at=None)
    assert oldest() == 0
    assert metrics.registry.get_sample_value("xenorchestra_ccm_nodes_waiting_initialization") == 0
