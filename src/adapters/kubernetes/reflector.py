"""List-then-watch a resource collection forever, as client-go's Reflector does.

A cache fed by a bare watch drifts: connections drop, the server ends every
watch after its timeout, and a resourceVersion kept too long gets compacted
away (410 Gone). The reflector resumes each new watch from the last
resourceVersion it saw (bookmarks keep that fresh even when nothing changes,
so a reconnect rarely needs a re-list), re-lists when the server says the
version is gone, and backs off (jittered, capped) on any other failure.

Listed objects are converted page by page (``convert``), so a list of 5,000
Nodes never holds more than one page of raw JSON: keeping every raw page until
the last one arrived was the CCM's peak memory, and Python rarely gives such a
peak back to the system.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from loguru import logger

from adapters.kubernetes.client import KubeClient
from adapters.kubernetes.errors import ApiError
from adapters.kubernetes.ratelimit import Backoff
from adapters.kubernetes.watch import Known, WatchStream
from adapters.kubernetes.wire import JsonObject, Query

T = TypeVar("T")
OnEvent = Callable[[str, JsonObject], None]


def unconverted(obj: JsonObject) -> JsonObject:
    """``convert`` for a receiver that wants the listed objects as they came."""
    return obj


class Reflector(Generic[T]):
    """Keeps ``on_sync``/``on_event`` informed of every object under ``path``.

    ``on_sync(items)`` receives the full list after every (re-)list, each
    object as ``convert`` made it (None: left out): the receiver replaces its
    state with it (``resource_version`` is the list's by then).
    ``on_event(type, object)`` receives ``ADDED``/``MODIFIED``/``DELETED`` raw
    in between. All are called on the loop and must not block.
    ``selector`` (e.g. a field selector) narrows both the list and the watch.
    ``known`` (see :meth:`WatchStream.next_event`): versions the receiver holds
    already, which reach it as bookmarks, undecoded.
    """

    def __init__(
        self,
        client: KubeClient,
        *,
        path: str,
        convert: Callable[[JsonObject], T | None],
        on_sync: Callable[[Sequence[T]], None],
        on_event: OnEvent,
        page_size: int = 500,
        watch_timeout: float = 300.0,
        backoff_base: float = 0.8,
        backoff_cap: float = 30.0,
        selector: Query = (),
        known: Known | None = None,
    ) -> None:
        self._client = client
        self._known = known
        self.path = path
        #: query parameters of both the list and the watch (a field selector)
        self._selector = tuple(selector)
        self._convert = convert
        self._on_sync = on_sync
        self._on_event = on_event
        self._page_size = page_size
        self._watch_timeout = watch_timeout
        self._backoff = Backoff(base=backoff_base, cap=backoff_cap)
        self._stream: WatchStream | None = None
        #: The version the next watch resumes from; empty means "list first".
        self.resource_version = ""
        #: How many full lists were made (the first one included).
        self.lists = 0
        self.last_error: ApiError | None = None
        self._synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- as a background task (what the caches built on it use) ----------------------------
    def start(self, *, name: str) -> None:
        """Run in a task named ``name`` (returns at once; see ``wait_synced``)."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name=name)

    async def stop(self) -> None:
        """Stop listing and watching; the receiver keeps its last state."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    @property
    def started(self) -> bool:
        return self._task is not None

    @property
    def synced(self) -> bool:
        """True once a first full list reached ``on_sync``."""
        return self._synced.is_set()

    async def wait_synced(self) -> None:
        """Return once a first full list reached ``on_sync`` (bound it with a timeout)."""
        await self._synced.wait()

    async def run(self) -> None:
        """List and watch until cancelled."""
        gone_in_a_row = 0
        while True:
            try:
                if not self.resource_version:
                    await self._list()
                    self._backoff.reset()
                if await self._watch():
                    self._backoff.reset()
                    gone_in_a_row = 0
            except ApiError as err:
                self.last_error = err
                if err.gone:
                    gone_in_a_row += 1
                    logger.info(
                        "{}: resourceVersion {} is gone, re-listing",
                        self.path,
                        self.resource_version,
                    )
                    self.resource_version = ""
                    if gone_in_a_row < 2:
                        continue
                delay = self._backoff.next()
                logger.warning("{}: {} (retrying in {:.1f}s)", self.path, err, delay)
                await asyncio.sleep(delay)
            except Exception as err:  # a bad kubeconfig, an undecodable object: keep trying
                # No traceback: loguru's diagnose mode would print frame locals,
                # and the request frames hold the Authorization header.
                delay = self._backoff.next()
                logger.error(
                    "{}: list/watch failed: {}: {} (retrying in {:.1f}s)",
                    self.path,
                    type(err).__name__,
                    err,
                    delay,
                )
                await asyncio.sleep(delay)

    async def _list(self) -> None:
        items: list[T] = []
        token = ""
        while True:
            token, version = await self._page(token, items)
            if not token:
                break
        self.lists += 1
        self.resource_version = version  # on_sync may read what the list is as of
        self._on_sync(items)
        self._synced.set()
        logger.debug("{}: listed {} objects at resourceVersion {}", self.path, len(items), version)

    async def _page(self, token: str, into: list[T]) -> tuple[str, str]:
        """Fetch one page, convert its objects into ``into`` and let the raw page go;
        the next page's continue token and the list's resourceVersion."""
        query = [*self._selector, ("limit", str(self._page_size))]
        if token:
            query.append(("continue", token))
        page = await self._client.request("GET", self.path, query=query)
        convert = self._convert
        into.extend(item for obj in page.get("items") or () if (item := convert(obj)) is not None)
        meta = page.get("metadata") or {}
        return str(meta.get("continue") or ""), str(meta.get("resourceVersion") or "")

    async def _watch(self) -> bool:
        """One watch from ``resource_version``; True if it delivered anything."""
        timeout = self._watch_timeout * random.uniform(1.0, 2.0)
        query = [
            *self._selector,
            ("watch", "1"),
            ("resourceVersion", self.resource_version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(int(timeout))),
        ]
        connect = self._client.settings.connect_timeout
        logger.debug("{}: watching from resourceVersion {}", self.path, self.resource_version)
        stream = await self._client.watch(
            self.path, query=query, request_timeout=(connect, timeout + 30)
        )
        self._stream = stream
        delivered = False
        try:
            while (event := await stream.next_event(self._known)) is not None:
                kind = str(event.get("type", ""))
                obj = event.get("object") or {}
                if kind == "ERROR":
                    raise ApiError.from_status_object(obj, method="WATCH", path=self.path)
                version = str((obj.get("metadata") or {}).get("resourceVersion") or "")
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    self._on_event(kind, obj)
                elif kind != "BOOKMARK":
                    logger.debug("{}: ignoring watch event of type {!r}", self.path, kind)
                    continue
                if version:
                    self.resource_version = version
                delivered = True
        finally:
            self._stream = None
            await stream.aclose()
        return delivered

    async def reconnect(self) -> None:
        """End the current watch now; the next one resumes from ``resource_version``."""
        if self._stream is not None:
            await self._stream.aclose()
