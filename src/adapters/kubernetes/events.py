"""Kubernetes Events: core/v1 ones about Nodes, and the startup-failure one.

Node events are what ``kubectl describe node`` shows, written the way
client-go's EventRecorder writes them (the reference CCM uses it), through
its correlator:

- a per-object token bucket (burst 25, one per 5 minutes, client-go's spam
  filter) drops floods;
- similar events (same source, object, type and reason) with 10 different
  messages within 10 minutes are aggregated: from the 10th on they become one
  event, "(combined from similar events): <message>", whose count goes up
  (client-go's ``EventAggregator``);
- a repeat of the same event (same source, object, type, reason and message)
  patches the existing one's ``count`` and ``lastTimestamp`` instead of piling
  up new objects.

Events are best effort: failures are logged, never raised. Registered secrets
are masked in every message and note written (events are not log records). This recorder
writes at once (one request per call); the CCM puts
:class:`adapters.kubernetes.event_queue.QueuedEventRecorder` in front of it,
so no controller ever waits for an event.
"""

from __future__ import annotations

import hashlib
import os
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import quote

from loguru import logger

from adapters.kubernetes.client import STRATEGIC_MERGE_PATCH, KubeClient
from adapters.kubernetes.convert import format_micro_time, format_time
from adapters.kubernetes.errors import ApiError
from adapters.kubernetes.ratelimit import TokenBucket
from adapters.kubernetes.wire import JsonObject
from adapters.logging_setup import mask_secrets
from domain.model import EventType, Node

#: Cluster-scoped objects' events live here (client-go's choice).
EVENT_NAMESPACE = "default"
_CACHE_SIZE = 4096
_SPAM_BURST = 25
_SPAM_QPS = 1.0 / 300.0
#: client-go's aggregation defaults: 10 similar events within 10 minutes.
AGGREGATE_MAX_EVENTS = 10
AGGREGATE_INTERVAL = 600.0
AGGREGATED_PREFIX = "(combined from similar events): "

PROVIDER_NAME = "xenorchestra"
CCM_CLIENT_NAME = "xenorchestra-cloud-controller-manager"
REASON_FAILED_TO_CHECK_CLIENT = "FailedToCheckClient"
ACTION_CHECK_CLIENT = "CheckClient"


class EventObserver(Protocol):
    """Told what became of each node event: ``recorded``, ``dropped`` (spam filter)
    or ``failed`` (the API server refused it or could not be reached)."""

    def observe_kubernetes_event(self, *, type: str, result: str) -> None: ...


@dataclass(slots=True)
class _Seen:
    name: str
    count: int


@dataclass(slots=True)
class _Similar:
    messages: set[str]
    last: float


class EventAggregator:
    """client-go's ``EventAggregator``: similar events (same source, object, type and
    reason) with ``max_events`` different messages within ``interval`` seconds are
    turned into one aggregate event, keyed without its message."""

    def __init__(
        self,
        *,
        max_events: int = AGGREGATE_MAX_EVENTS,
        interval: float = AGGREGATE_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max = max_events
        self._interval = interval
        self._clock = clock
        self._similar: OrderedDict[tuple[str, ...], _Similar] = OrderedDict()

    def aggregate(self, key: tuple[str, ...], message: str) -> tuple[tuple[str, ...], str]:
        """The cache key and message to record ``message`` under (``key``: the
        event's key without its message)."""
        now = self._clock()
        record = self._similar.get(key)
        if record is None or now - record.last > self._interval:
            record = _Similar(messages=set(), last=now)
            self._similar[key] = record
            while len(self._similar) > _CACHE_SIZE:
                self._similar.popitem(last=False)
        self._similar.move_to_end(key)
        record.last = now
        record.messages.add(message)
        if len(record.messages) < self._max:
            return (*key, message), message
        record.messages.discard(message)  # never grow past the limit
        return (*key, ""), AGGREGATED_PREFIX + message


class KubernetesEventRecorder:
    """Implements ``domain.ports.EventRecorder`` with core/v1 Events.

    ``host`` fills ``source.host`` / ``reportingInstance`` when given; the CCM gives
    none, as the Go CCM's controllers (their event source names the component
    only). Each call makes at most one request and never retries beyond one
    attempt on throttling, so a sick API server slows a sync by one request at
    most.
    """

    def __init__(
        self,
        client: KubeClient,
        *,
        host: str | None = None,
        namespace: str = EVENT_NAMESPACE,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        observer: EventObserver | None = None,
    ) -> None:
        self._client = client
        self._observer = observer
        self._host = host or ""
        self._namespace = namespace
        self._now = clock
        self._seen: OrderedDict[tuple[str, ...], _Seen] = OrderedDict()
        self._spam: OrderedDict[tuple[str, ...], TokenBucket] = OrderedDict()
        self._aggregator = EventAggregator()
        self.recorded = 0
        self.dropped = 0
        self.failed = 0

    async def record(
        self,
        *,
        node: Node,
        type: EventType,
        reason: str,
        message: str,
        source: str,
        at: datetime | None = None,
    ) -> None:
        """Write the event now; ``at`` is when it happened (default: now)."""
        try:
            await self._record(node, type, reason, message, source, at or self._now())
        except Exception as err:  # best effort, by contract
            self.failed += 1
            self._observe(type, "failed")
            logger.warning(
                "could not record event {} {} on node {}: {}", type.value, reason, node.name, err
            )

    def _observe(self, kind: EventType, result: str) -> None:
        if self._observer is None:
            return
        try:
            self._observer.observe_kubernetes_event(type=kind.value, result=result)
        except Exception as err:  # the observer is someone else's code
            logger.warning("event observer failed: {}", err.__class__.__name__)

    async def _record(
        self, node: Node, type: EventType, reason: str, message: str, source: str, at: datetime
    ) -> None:
        # An Event is stored, not logged: the log mask never sees it, so mask here,
        # whoever built the text (an error quoting a header, say).
        message = mask_secrets(message)
        logger.debug("event on node {}: {} {}: {}", node.name, type.value, reason, message)
        if not self._allow(source, node):
            self.dropped += 1
            self._observe(type, "dropped")
            logger.debug("event {} on node {} dropped (spam filter)", reason, node.name)
            return
        key, message = self._aggregator.aggregate(
            (source, self._host, node.name, node.uid, type.value, reason), message
        )
        now = format_time(at)
        seen = self._seen.get(key)
        if seen is not None:
            self._seen.move_to_end(key)
            seen.count += 1
            patch = {"count": seen.count, "lastTimestamp": now, "message": message}
            path = f"/api/v1/namespaces/{self._namespace}/events/{quote(seen.name, safe='')}"
            try:
                await self._client.request(
                    "PATCH", path, body=patch, content_type=STRATEGIC_MERGE_PATCH, retries=1
                )
                self.recorded += 1
                self._observe(type, "recorded")
                return
            except ApiError as err:
                if not err.not_found:  # expired (events live an hour): create anew
                    raise
        # Unique, not secret: the clock in hex (client-go's form) and 16 random bits
        # for two writers in one nanosecond (no system call, unlike ``secrets``).
        name = f"{node.name}.{time.time_ns():x}{random.getrandbits(16):04x}"
        body = self._event(name, node, type, reason, message, source, now)
        await self._client.request(
            "POST", f"/api/v1/namespaces/{self._namespace}/events", body=body, retries=1
        )
        self._seen[key] = _Seen(name=name, count=1)
        while len(self._seen) > _CACHE_SIZE:
            self._seen.popitem(last=False)
        self.recorded += 1
        self._observe(type, "recorded")

    def _event(
        self,
        name: str,
        node: Node,
        type: EventType,
        reason: str,
        message: str,
        source: str,
        now: str,
    ) -> JsonObject:
        involved: JsonObject = {"apiVersion": "v1", "kind": "Node", "name": node.name}
        if node.uid:
            involved["uid"] = node.uid
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": self._namespace},
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "type": type.value,
            "source": {"component": source, **({"host": self._host} if self._host else {})},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "reportingComponent": source,
            "reportingInstance": self._host,
        }

    def _allow(self, source: str, node: Node) -> bool:
        key = (source, node.name, node.uid)
        bucket = self._spam.get(key)
        if bucket is None:
            bucket = TokenBucket(qps=_SPAM_QPS, burst=_SPAM_BURST)
            self._spam[key] = bucket
            while len(self._spam) > _CACHE_SIZE:
                self._spam.popitem(last=False)
        else:
            self._spam.move_to_end(key)
        return bucket.try_take()


def _regarding(environ: Mapping[str, str]) -> tuple[str, JsonObject]:
    """The Pod this process runs in (downward API variables), else a Component."""
    namespace = environ.get("POD_NAMESPACE") or "kube-system"
    pod = environ.get("POD_NAME", "")
    if pod:
        ref: JsonObject = {"apiVersion": "v1", "kind": "Pod", "namespace": namespace, "name": pod}
        if environ.get("POD_UID"):
            ref["uid"] = environ["POD_UID"]
        return namespace, ref
    return namespace, {
        "apiVersion": "v1",
        "kind": "Component",
        "namespace": namespace,
        "name": PROVIDER_NAME,
    }


async def record_client_check_failure(
    client: KubeClient,
    *,
    error: str,
    environ: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> bool:
    """Emit the events.k8s.io/v1 Warning ``FailedToCheckClient`` (action ``CheckClient``).

    Written like the reference CCM before it exits on a failed XO check: the
    event is named from a hash of what it is about, so every restart of a
    crash-looping pod bumps one event's ``series.count`` instead of adding a
    new object. The first note stays (events.k8s.io/v1 notes are immutable:
    the reference's attempt to replace it fails when the error text
    changes). Returns whether the event was written; never raises.
    """
    env = os.environ if environ is None else environ
    namespace, regarding = _regarding(env)
    digest = hashlib.sha256(
        "/".join(
            [
                namespace,
                regarding["kind"],
                regarding["name"],
                str(regarding.get("uid", "")),
                ACTION_CHECK_CLIENT,
                REASON_FAILED_TO_CHECK_CLIENT,
            ]
        ).encode()
    ).hexdigest()[:12]
    name = f"{PROVIDER_NAME}-{digest}"
    moment = format_micro_time(now or datetime.now(UTC))
    event: JsonObject = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": namespace},
        "eventTime": moment,
        "reportingController": PROVIDER_NAME,
        "reportingInstance": env.get("POD_NAME") or CCM_CLIENT_NAME,
        "action": ACTION_CHECK_CLIENT,
        "reason": REASON_FAILED_TO_CHECK_CLIENT,
        "regarding": regarding,
        "note": mask_secrets(f"Failed to check Xen Orchestra client: {error}")[:1024],
        "type": EventType.WARNING.value,
    }
    collection = f"/apis/events.k8s.io/v1/namespaces/{namespace}/events"
    try:
        try:
            await client.request("POST", collection, body=event, retries=1)
            return True
        except ApiError as err:
            if not err.already_exists:
                raise
        # Everything but the series is immutable once written (the API server
        # refuses a new note with 422), so only the series moves.
        existing = await client.request("GET", f"{collection}/{name}", retries=1)
        series = existing.get("series") or {}
        existing["series"] = {
            "count": int(series.get("count") or 1) + 1,
            "lastObservedTime": moment,
        }
        await client.request("PUT", f"{collection}/{name}", body=existing, retries=1)
        return True
    except Exception as err:
        logger.error("could not record the {} event: {}", REASON_FAILED_TO_CHECK_CLIENT, err)
        return False
