"""XO change events as a stream of VMChange (and PlacementChange), whatever the server
supports.

XO 5.113+ pushes server-sent events: ``GET /events`` gives a connection id
in its ``init`` frame, subscriptions are POSTed per collection, then ``add``,
``update`` and ``remove`` frames arrive with ``ping`` frames in between.
There is no resume: after every (re)connect the stream yields RESYNC so
consumers re-list, and events missed while disconnected do not matter.

A stream can die silently (a proxy keeps a dead TCP connection open), so a
watchdog treats ``ping_timeout`` seconds without any frame as a dead stream.
Older XO answers 404 on ``GET /events``: then the stream polls
``snapshot()`` and diffs VMs into the same add/update/remove changes.

Host and pool frames keep the inventory's caches fresh (names, tags, and pools
that vanish when XO loses them); an update of one is also yielded, after the
cache holds it, as a PlacementChange (its name or tags may be in node labels).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from contextlib import aclosing
from typing import Any
from urllib.parse import quote

from httpx_sse import EventSource, ServerSentEvent
from loguru import logger

from adapters import jsonwire
from adapters.xenorchestra import observer as obs
from adapters.xenorchestra.http import XOHttpClient, XONotFound
from adapters.xenorchestra.parsing import (
    HOST_FIELDS,
    POOL_FIELDS,
    VM_FIELDS,
    parse_host,
    parse_pool,
    parse_vm,
)
from adapters.xenorchestra.policy import StreamPolicy
from domain.errors import AuthenticationError, InventoryError, ProtocolError
from domain.model import (
    VM,
    Change,
    ChangeKind,
    Host,
    InventorySnapshot,
    PlacementChange,
    Pool,
    VMChange,
)

EVENTS = "GET /events"
SUBSCRIBE = "POST /events/{id}/subscriptions"

_KINDS = {"add": ChangeKind.ADDED, "update": ChangeKind.UPDATED, "remove": ChangeKind.REMOVED}
#: (collection, fields, required): without the VM subscription there is no stream.
_SUBSCRIPTIONS = (
    ("VM", VM_FIELDS, True),
    ("host", HOST_FIELDS, False),
    ("pool", POOL_FIELDS, False),
)


class EventsUnsupported(InventoryError):
    """``GET /events`` is 404: this XO predates server-sent events."""


class StreamDead(InventoryError):
    """The event stream ended, or stayed silent past the ping watchdog."""


def diff_vms(before: Mapping[str, VM], after: Mapping[str, VM]) -> list[VMChange]:
    """The changes that turn one VM listing into the next (used when polling)."""
    changes = [VMChange(ChangeKind.REMOVED, vm) for i, vm in before.items() if i not in after]
    for vm_id, vm in after.items():
        old = before.get(vm_id)
        if old is None:
            changes.append(VMChange(ChangeKind.ADDED, vm))
        elif old != vm:
            changes.append(VMChange(ChangeKind.UPDATED, vm))
    return changes


def diff_placements(before: InventorySnapshot, after: InventorySnapshot) -> list[PlacementChange]:
    """The hosts and pools updated from one listing to the next (used when polling)."""
    hosts = [
        PlacementChange(host=host)
        for host_id, host in after.hosts.items()
        if host_id in before.hosts and before.hosts[host_id] != host
    ]
    pools = [
        PlacementChange(pool=pool)
        for pool_id, pool in after.pools.items()
        if pool_id in before.pools and before.pools[pool_id] != pool
    ]
    return hosts + pools


class ChangeStream:
    """One consumer's change stream; :meth:`run` is the async iterator."""

    def __init__(
        self,
        *,
        client: XOHttpClient,
        policy: StreamPolicy,
        snapshot: Callable[[], Awaitable[InventorySnapshot]],
        on_host: Callable[[Host, bool], None],
        on_pool: Callable[[Pool, bool], None],
        on_vm: Callable[[VMChange], None] = lambda _change: None,
    ) -> None:
        self._client = client
        self._policy = policy
        self._snapshot = snapshot
        self._on_host = on_host
        self._on_pool = on_pool
        self._on_vm = on_vm

    async def run(self) -> AsyncGenerator[Change, None]:
        """Yield changes forever: reconnect with backoff, poll when events are missing.

        The stream's state goes to the client's observer (``/metrics``): connected,
        polling, down while reconnecting, stopped once this generator ends.
        """
        try:
            async with aclosing(self._run()) as changes:
                async for change in changes:
                    yield change
        finally:
            self._report(obs.STREAM_STOPPED)

    def _report(self, state: str | None, supported: bool | None = None) -> None:
        obs.safe_observe_stream(self._client.observer, state=state, supported=supported)

    async def _run(self) -> AsyncGenerator[Change, None]:
        delay = self._policy.reconnect_initial
        while not self._client.closed:
            pause = delay * (1 + random.uniform(0, 0.5))
            try:
                async with aclosing(self._session()) as session:
                    async for change in session:
                        if isinstance(change, VMChange) and change.kind is ChangeKind.RESYNC:
                            delay = self._policy.reconnect_initial
                            self._report(obs.STREAM_CONNECTED)
                        yield change
            except EventsUnsupported:
                logger.info(
                    "XO has no events endpoint (older than 5.113): polling every {}s",
                    self._policy.poll_interval,
                )
                self._report(obs.STREAM_POLLING, supported=False)
                async with aclosing(self._poll()) as polling:
                    async for change in polling:
                        yield change
                return
            except AuthenticationError as err:
                self._report(obs.STREAM_DOWN)
                logger.error("XO event stream refused: {}; retrying in {:.1f}s", err, pause)
            except InventoryError as err:
                self._report(obs.STREAM_DOWN)
                logger.warning("XO event stream lost: {}; reconnecting in {:.1f}s", err, pause)
            except Exception as err:
                if self._client.closed:
                    break  # the inventory was closed under a running stream
                # Whatever else broke the session, the stream outlives it: consumers
                # (the change router) must never die of one bad connection.
                self._report(obs.STREAM_DOWN)
                logger.error(
                    "XO event stream failed: {}: {}; reconnecting in {:.1f}s",
                    type(err).__name__,
                    err,
                    pause,
                )
            await asyncio.sleep(pause)
            delay = min(self._policy.reconnect_max, delay * 2)
        logger.debug("XO change stream ended: the client is closed")

    # -- server-sent events ---------------------------------------------------
    async def _session(self) -> AsyncGenerator[Change, None]:
        """One connection: init, subscribe, RESYNC, then changes until it dies."""
        try:
            async with self._client.stream("/events", endpoint=EVENTS) as response:
                self._report(None, supported=True)  # XO serves events
                frames = EventSource(response).aiter_sse()
                async with aclosing(frames):
                    init = await self._next(frames)
                    if init.event != "init":
                        raise ProtocolError(
                            f"Xen Orchestra {EVENTS}: first frame is {init.event!r}, not 'init'"
                        )
                    connection = self._connection_id(init)
                    logger.debug("XO event stream open, connection {}", connection)
                    await self._subscribe(connection)
                    yield VMChange(ChangeKind.RESYNC)
                    while True:
                        change = self._handle(await self._next(frames))
                        if change is not None:
                            yield change
        except XONotFound as err:
            if err.endpoint == EVENTS:
                raise EventsUnsupported(str(err)) from None
            raise StreamDead(f"subscription refused: {err}") from None

    async def _next(self, frames: AsyncIterator[ServerSentEvent]) -> ServerSentEvent:
        """The next frame, or StreamDead after ``ping_timeout`` of silence."""
        try:
            async with asyncio.timeout(self._policy.ping_timeout):
                frame = await anext(frames)
        except TimeoutError:
            raise StreamDead(
                f"no event (not even a ping) for {self._policy.ping_timeout:g}s"
            ) from None
        except StopAsyncIteration:
            raise StreamDead("the server closed the event stream") from None
        logger.trace("XO event {}", frame.event)
        return frame

    @staticmethod
    def _connection_id(init: ServerSentEvent) -> str:
        try:
            data = jsonwire.loads(init.data)
        except (ValueError, RecursionError):
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not data["id"]:
            raise ProtocolError(f"Xen Orchestra {EVENTS}: the init frame has no connection id")
        return str(data["id"])

    async def _subscribe(self, connection: str) -> None:
        for collection, fields, required in _SUBSCRIPTIONS:
            try:
                await self._client.request_json(
                    "POST",
                    f"/events/{quote(connection, safe='')}/subscriptions",
                    endpoint=SUBSCRIBE,
                    body={"collection": collection, "fields": list(fields)},
                    deadline=self._policy.subscribe_deadline,
                )
            except XONotFound:
                raise
            except InventoryError as err:
                if required:
                    raise
                logger.warning(
                    "XO refused the {} subscription ({}): caches not refreshed", collection, err
                )

    def _handle(self, frame: ServerSentEvent) -> Change | None:
        kind = _KINDS.get(frame.event)
        if kind is None:
            if frame.event not in ("ping", "init"):
                logger.debug("XO event {!r} ignored", frame.event)
            return None
        try:
            data: Any = jsonwire.loads(frame.data)
        except (ValueError, RecursionError):
            logger.warning("XO {} event with a body that is not JSON: ignored", frame.event)
            return None
        if not isinstance(data, dict):
            logger.warning("XO {} event whose data is not an object: ignored", frame.event)
            return None
        collection = data.get("$subscription")
        endpoint = f"event {frame.event} {collection}"
        try:
            if collection == "VM":
                change = VMChange(kind, parse_vm(data, endpoint=endpoint))
                self._on_vm(change)
                return change
            if collection == "host":
                host = parse_host(data, endpoint=endpoint)
                self._on_host(host, kind is ChangeKind.REMOVED)
                if kind is ChangeKind.UPDATED:
                    return PlacementChange(host=host)
            elif collection == "pool":
                pool = parse_pool(data, endpoint=endpoint)
                self._on_pool(pool, kind is ChangeKind.REMOVED)
                if kind is ChangeKind.UPDATED:
                    return PlacementChange(pool=pool)
        except ProtocolError as err:
            logger.warning("{}: ignored", err)
        return None

    # -- polling fallback ---------------------------------------------------
    async def _poll(self) -> AsyncGenerator[Change, None]:
        previous: InventorySnapshot | None = None
        while not self._client.closed:
            try:
                snap = await self._snapshot()
            except InventoryError as err:
                logger.warning("XO poll failed: {}", err)
            except Exception as err:
                if self._client.closed:
                    return
                logger.error("XO poll failed: {}: {}", type(err).__name__, err)
            else:
                if previous is None:
                    yield VMChange(ChangeKind.RESYNC)
                else:
                    for change in diff_vms(previous.vms, snap.vms):
                        yield change
                    for placement in diff_placements(previous, snap):
                        yield placement
                previous = snap
            await asyncio.sleep(self._policy.poll_interval)
