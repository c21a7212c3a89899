"""The Inventory port over the XO REST API.

Cost model (what keeps 1,000 nodes cheap):

- ``snapshot()`` is exactly three requests (VMs, hosts, pools, each with a
  field list), and it refills the host and pool caches; a list whose bytes are
  those of the previous answer is not decoded nor parsed again (at rest every
  periodic pass costs three reads and three byte comparisons, and hands the
  passes the very VM values they saw last time);
- ``get_host``/``get_pool`` answer from those caches and only ask XO on a
  miss, so initializing a node whose host and pool are known costs one
  request (``GET /vms/{id}``); the caches never go back in time: an entry is
  replaced only by an answer observed after it for certain (the rule of
  ``domain.freshness``), or by an event, so a snapshot that was asked first and
  finishes last never puts an older host or pool back (labels are computed
  from them);
- ``get_vm`` asks XO (a 404 is None: what it means is the domain's call,
  ``domain.matching.confirm_absence``); ``pools_known`` asks XO whether it
  vouches for each pool (the pool-disconnect trap in ``xo-rest-api.md``), never
  the cache, concurrently, one request per question however many nodes ask at
  once (single flight): the pool exists and its VMs are loaded (its control
  domains are listed: XO fetches them with the VMs, and a failed fetch leaves
  the pool without either); ``pools_seen`` says where a VM was seen (a VM moved
  to a pool XO then lost is absent too, whatever pool its node names), and for a
  VM never seen, whether every one of XO's servers is connected.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from functools import partial
from types import MappingProxyType, TracebackType
from typing import Any, TypeVar
from urllib.parse import quote, unquote

from loguru import logger

from adapters.config import CloudConfig
from adapters.xenorchestra.changes import ChangeStream
from adapters.xenorchestra.credentials import CredentialSource
from adapters.xenorchestra.http import Body, XOHttpClient, XONotFound, XORedirect
from adapters.xenorchestra.observer import XORequestObserver
from adapters.xenorchestra.parsing import (
    HOST_FIELDS,
    POOL_FIELDS,
    VM_FIELDS,
    exact_filter,
    expect_id,
    parse_host,
    parse_list,
    parse_pool,
    parse_server,
    parse_vm,
)
from adapters.xenorchestra.policy import RetryPolicy, StreamPolicy
from adapters.xenorchestra.tls import tls_verify
from domain.errors import ProtocolError
from domain.freshness import Observation
from domain.model import (
    VM,
    Change,
    Host,
    InventorySnapshot,
    Pool,
    PoolPresence,
    VMChange,
    XOServer,
)
from domain.sharing import shared

#: how many times a host or pool is asked while its answers cross others (see _asked)
ASKS = 3
#: seconds a pool a VM was seen in is remembered at least (``pools_seen``), and then
#: until XO holds that pool again: far above a deletion's confirmation
VANISHED_KEPT = 3600.0

VMS = "GET /vms"
VM_BY_ID = "GET /vms/{id}"
HOSTS = "GET /hosts"
HOST_BY_ID = "GET /hosts/{id}"
POOLS = "GET /pools"
POOL_BY_ID = "GET /pools/{id}"
SERVERS = "GET /servers"
VM_CONTROLLERS = "GET /vm-controllers"
CURRENT_USER = "GET /users/me"
USER_BY_ID = "GET /users/{id}"
#: Where XO's ``/users/me`` alias redirects: the current user's own path.
_USER_PATH = re.compile(r"^(?:https?://[^/]+)?/rest/v0/users/([^/?#]+)/?(?:[?#].*)?$")

T = TypeVar("T")
#: what a list answer holds: objects with an ``id``
Listed = TypeVar("Listed", VM, Host, Pool)


def _each(items: Sequence[Any], parse: Callable[..., T], endpoint: str) -> list[T]:
    """Every object of a list that parses; one that does not is logged and left out,
    so one odd VM costs that VM (absent: never evidence of a deletion, which
    ``get_vm`` alone decides), not the pass of every other node. A list in which
    nothing parses is the answer itself broken: ProtocolError."""
    parsed: list[T] = []
    failures: list[ProtocolError] = []
    for item in items:
        try:
            parsed.append(parse(item, endpoint=endpoint))
        except ProtocolError as err:
            failures.append(err)
            logger.error("{}: left out of the snapshot", err)
    if failures and not parsed:
        raise failures[0]
    return parsed


def _segment(value: str) -> str:
    """An id as one URL path segment (ids come from Nodes: never trust them)."""
    return quote(value.strip().lower(), safe="")


async def _all_or_none(*calls: Awaitable[T]) -> list[T]:
    """All answers, or the first failure with the other requests cancelled: a bare
    ``gather`` would leave them running (retrying, measured) after the caller has
    moved on."""
    tasks = [asyncio.ensure_future(call) for call in calls]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


class XOInventory:
    """Implements ``domain.ports.Inventory`` against a Xen Orchestra server.

    Build it with :meth:`from_config`; close it with :meth:`aclose` or use it
    as an async context manager. One instance per process: it owns the
    connection pool and the host/pool caches.
    """

    def __init__(self, client: XOHttpClient, *, stream: StreamPolicy | None = None) -> None:
        self._client = client
        self._hosts: dict[str, Host] = {}
        self._pools: dict[str, Pool] = {}
        #: request starts and ends, and events, in the order the event loop sees them
        self._tickets = itertools.count(1)
        #: per ("host"|"pool", id): when the answer or event that last set (or removed)
        #: its cache entry was observed; one entry per host and pool XO ever named
        self._observed: dict[tuple[str, str], Observation] = {}
        #: the VMs of the newest VM list (for certain), and when it was observed
        self._vm_list: Mapping[str, VM] = {}
        self._vm_list_seen: Observation | None = None
        #: per VM, the pools XO was seen to place it in other than the VM list's (it
        #: moved, or left XO's answers), and since when
        self._other_pools: dict[str, dict[str, float]] = {}
        self._said_no_controllers = False
        #: per object asked for: the request on its way, and the ticket it started at
        self._inflight: dict[tuple[str, str], tuple[int, asyncio.Future[Any]]] = {}
        #: the ticket taken when XO last answered that a VM is missing: the checks of
        #: such an answer never share a request started before it
        self._last_absence = 0
        #: per list endpoint: the bytes of its last answer and what they parsed to
        self._last_lists: dict[str, tuple[bytes, Mapping[str, Any]]] = {}
        self._stream_policy = stream or StreamPolicy()

    @classmethod
    def from_config(
        cls,
        config: CloudConfig,
        *,
        observer: XORequestObserver | None = None,
        retry: RetryPolicy | None = None,
        stream: StreamPolicy | None = None,
    ) -> XOInventory:
        """The adapter for a cloud config (TLS, auth, timeout, concurrency from it)."""
        credentials = CredentialSource.from_config(config)
        client = XOHttpClient(
            url=config.url,
            credentials=credentials,
            verify=tls_verify(insecure=config.insecure, ca_file=config.ca_file),
            timeout=config.client_timeout,
            retry=retry,
            max_concurrent_requests=config.max_concurrent_requests,
            observer=observer,
            max_response_bytes=config.max_response_bytes,
        )
        logger.debug(
            "XO inventory for {} ({} auth{}, TLS {})",
            config.url,
            credentials.method,
            f" from {', '.join(map(str, config.credential_files))}"
            if config.credential_files
            else "",
            "unverified" if config.insecure else f"verified, CA {config.ca_file or 'system'}",
        )
        return cls(client, stream=stream)

    def __repr__(self) -> str:
        return f"XOInventory({self._client!r})"

    @property
    def client(self) -> XOHttpClient:
        """The HTTP client underneath (``doctor`` probes endpoints the port does not cover)."""
        return self._client

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> XOInventory:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- startup check ---------------------------------------------------
    async def check(self, *, deadline: float | None = None) -> None:
        """Prove XO answers and accepts the credentials: list one VM id.

        ``deadline`` bounds the retries (the startup check and readiness want an
        answer within seconds, not the retry policy's full minute). Raises
        AuthenticationError, ProtocolError or InventoryError.
        """
        body = await self._client.request_json(
            "GET", "/vms", endpoint=VMS, params={"limit": "1", "fields": "id"}, deadline=deadline
        )
        parse_list(body, endpoint=VMS)

    # -- the port --------------------------------------------------------
    async def get_vm(self, *, vm_id: str) -> VM | None:
        if not vm_id.strip():
            return None
        try:
            body = await self._client.get_json(f"/vms/{_segment(vm_id)}", endpoint=VM_BY_ID)
        except XONotFound as err:
            if not err.says_missing("VM", vm_id.strip().lower()):
                await self._check_absent_by_list(vm_id.strip().lower(), err)
            self._last_absence = next(self._tickets)
            return None
        vm = parse_vm(body, endpoint=VM_BY_ID)
        expect_id(vm.id, vm_id, endpoint=VM_BY_ID, what="VM")
        self._saw(vm)
        return vm

    def pools_seen(self, *, vm_id: str) -> frozenset[str]:
        key = vm_id.strip().lower()
        listed = self._vm_list.get(key)
        pools = set(self._other_pools.get(key, ()))
        if listed is not None:
            pools.add(listed.pool_id)
        pools.discard("")
        return frozenset(pools)

    async def servers(self) -> Sequence[XOServer] | None:
        """XO's connections to its pools, asked now (an absence check's share only a
        request started after the VM's 404); None when this XO has no ``/servers``
        (before July 2024)."""
        return await self._single_flight(
            ("servers", ""), self._fetch_servers, after=self._last_absence
        )

    async def _fetch_servers(self) -> Sequence[XOServer] | None:
        try:
            body = await self._client.get_json(
                "/servers",
                endpoint=SERVERS,
                params={"fields": "id,label,host,enabled,status,poolId,error"},
            )
        except XONotFound:
            return None
        return [parse_server(item, endpoint=SERVERS) for item in parse_list(body, endpoint=SERVERS)]

    def _saw(self, vm: VM) -> None:
        """XO placed ``vm`` in its pool (a lookup, an event): remembered when the VM
        list does not say so (the list's pool is read from it)."""
        listed = self._vm_list.get(vm.id)
        if vm.pool_id and (listed is None or listed.pool_id != vm.pool_id):
            self._other_pools.setdefault(vm.id, {})[vm.pool_id] = time.monotonic()

    def _note_vm_change(self, change: VMChange) -> None:
        """A VM event: its object says which pool the VM is (or, removed, was last) in."""
        if change.vm is not None:
            self._saw(change.vm)

    def _note_vm_list(self, vms: Mapping[str, VM], started: int) -> None:
        """A VM list answer, the newest for certain: the pool each VM of the previous
        one was in is remembered where this one says otherwise (moved or gone), until
        ``VANISHED_KEPT`` seconds have passed and XO holds that pool again."""
        seen = Observation(start=started, end=next(self._tickets))
        last = self._vm_list_seen
        if vms is self._vm_list or (last is not None and not seen.newer_than(last)):
            return
        now = time.monotonic()
        for vm_id, vm in self._vm_list.items():
            now_in = vms.get(vm_id)
            if vm.pool_id and (now_in is None or now_in.pool_id != vm.pool_id):
                self._other_pools.setdefault(vm_id, {}).setdefault(vm.pool_id, now)
        for vm_id, pools in list(self._other_pools.items()):
            for pool, since in list(pools.items()):
                if now - since > VANISHED_KEPT and pool in self._pools:
                    del pools[pool]
            if not pools:
                del self._other_pools[vm_id]
        self._vm_list, self._vm_list_seen = vms, seen

    async def _check_absent_by_list(self, vm_id: str, err: XONotFound) -> None:
        """A 404 for the VM that is not XO's error object naming it (an older XO's
        router, or a proxy routing by path) proves nothing alone: XO's list answers
        for it (every XO version filters lists). Raises unless it lists no such VM."""
        body = await self._client.get_json(
            "/vms", endpoint=VMS, params={"filter": exact_filter("id", vm_id), "fields": "id"}
        )
        if parse_list(body, endpoint=VMS):
            raise ProtocolError(
                f"Xen Orchestra {VM_BY_ID}: {err.status_line} for VM {vm_id}, yet XO lists it "
                "(something other than XO answering that route?): not read as a missing VM"
            )

    async def pools_known(self, *, pool_ids: Collection[str]) -> Mapping[str, PoolPresence]:
        # Never the cache: it cannot tell a deleted VM's pool from one XO just lost. A
        # pass over many nodes of one pool shares each request (single flight).
        keys = sorted({p.strip().lower() for p in pool_ids if p.strip()})
        if not keys:
            return {}
        answers = await _all_or_none(*(self._confirm_pool(key) for key in keys))
        held = [key for key, pool in zip(keys, answers, strict=True) if pool is not None]
        loaded = dict(
            zip(
                held, await _all_or_none(*(self._pool_vms_loaded(key) for key in held)), strict=True
            )
        )
        known = dict.fromkeys(keys, PoolPresence.LOST) | {
            key: PoolPresence.HELD if vms else PoolPresence.WITHOUT_VMS
            for key, vms in loaded.items()
        }
        for key in held:
            if not loaded[key]:
                logger.info(
                    "XO lists no control domain of pool {}: its VMs not loaded yet, or not "
                    "visible to these credentials (not an admin's?)",
                    key,
                )
        logger.debug("pools known to XO: {}", known)
        return known

    async def _pool_vms_loaded(self, key: str) -> bool:
        """:meth:`_vms_loaded`, concurrent askers of one pool sharing one request."""
        return await self._single_flight(
            ("pool-vms", key), lambda: self._vms_loaded(key), after=self._last_absence
        )

    async def _vms_loaded(self, pool_id: str) -> bool:
        """Whether XO lists a control domain of the pool: XO fetches them with the
        pool's VMs, so none means it has not loaded them (or this XO has no
        ``/vm-controllers``: True, nothing to ask, said once). Only one of that pool
        counts, whatever the filter did (something in front of XO may drop it)."""
        try:
            body = await self._client.get_json(
                "/vm-controllers",
                endpoint=VM_CONTROLLERS,
                params={"filter": f"$pool:{pool_id}", "fields": "id,$pool", "limit": "1"},
            )
        except XONotFound:
            if not self._said_no_controllers:
                self._said_no_controllers = True
                logger.warning(
                    "XO answers 404 for {}: a VM's absence is not checked against its pool's "
                    "control domains (an XO before Sept 2024, or a proxy that lets only "
                    "some routes through)",
                    VM_CONTROLLERS,
                )
            return True
        return any(
            isinstance(item, dict) and str(item.get("$pool", "")).lower() == pool_id
            for item in parse_list(body, endpoint=VM_CONTROLLERS)
        )

    async def admin_view(self) -> bool:
        """Whether the credentials are an admin's, from XO's own user record.

        ``GET /users/me`` redirects (307) to ``/users/<id>``, which XO lets every user
        read for themselves; ``permission`` is ``admin`` for an admin (a small record;
        nothing of it is logged). XO's REST API
        before that alias served admins only (any other user got 401/403 everywhere),
        so a 404 there means an admin's credentials. Never cached here.
        """
        try:
            body = await self._client.get_json("/users/me", endpoint=CURRENT_USER)
        except XORedirect as moved:
            match = _USER_PATH.match(moved.location)
            if match is None:
                raise ProtocolError(
                    f"Xen Orchestra {CURRENT_USER}: redirected to {moved.location!r}, not to a user"
                ) from None
            user = quote(unquote(match[1]), safe="")
            body = await self._client.get_json(f"/users/{user}", endpoint=USER_BY_ID)
        except XONotFound:
            logger.debug("XO has no /users/me: its REST API answers admins only")
            return True
        permission = body.get("permission") if isinstance(body, dict) else None
        if not isinstance(permission, str):
            raise ProtocolError(f"Xen Orchestra {USER_BY_ID}: the user has no permission field")
        return permission == "admin"

    async def _confirm_pool(self, key: str) -> Pool | None:
        """XO's answer for the pool now (never the cache); concurrent askers share it."""
        return await self._single_flight(
            ("confirm-pool", key), lambda: self._fetch_pool(key), after=self._last_absence
        )

    async def find_vms_by_name(self, *, name_label: str) -> Sequence[VM]:
        body = await self._client.get_json(
            "/vms",
            endpoint=VMS,
            params={
                "filter": exact_filter("name_label", name_label),
                "fields": ",".join(VM_FIELDS),
            },
        )
        vms = [parse_vm(item, endpoint=VMS) for item in parse_list(body, endpoint=VMS)]
        return [vm for vm in vms if vm.name_label == name_label]

    async def get_host(self, *, host_id: str) -> Host | None:
        key = host_id.strip().lower()
        if not key:
            return None
        host = self._hosts.get(key)
        if host is not None:
            return host
        logger.trace("host {} not cached: asking XO", key)
        return await self._single_flight(("host", key), lambda: self._fetch_host(key))

    async def _fetch_host(self, key: str) -> Host | None:
        """XO's answer now, settled into the cache (see :meth:`_settle`)."""
        return await self._asked(
            "host", self._hosts, key, lambda: self._one("/hosts", HOST_BY_ID, parse_host, key)
        )

    async def _one(
        self, path: str, endpoint: str, parse: Callable[..., Listed], key: str
    ) -> Listed | None:
        """The object ``key`` of a collection (None: XO has no such object)."""
        try:
            body = await self._client.get_json(f"{path}/{_segment(key)}", endpoint=endpoint)
        except XONotFound:
            return None
        obj = parse(body, endpoint=endpoint)
        expect_id(obj.id, key, endpoint=endpoint, what=path.strip("/").removesuffix("s"))
        return obj

    async def _asked(
        self, kind: str, cache: dict[str, T], key: str, ask: Callable[[], Awaitable[T | None]]
    ) -> T | None:
        """``ask()``'s answer, settled into ``cache``; asked again (twice at most) while
        it cannot be told from a different answer observed meanwhile, which a request
        started after both can (one of them is older: not knowing which, keep neither)."""
        for _ in range(ASKS):
            started = next(self._tickets)
            answer = await ask()
            if self._settle(kind, cache, key, answer, started):
                break
            logger.debug("XO's answers about {} {} crossed: asking again", kind, key)
        return answer

    def _settle(
        self, kind: str, cache: dict[str, T], key: str, answer: T | None, started: int
    ) -> bool:
        """Put XO's answer about one host or pool (None: XO has none), its request
        started at ticket ``started`` and back now, into ``cache`` unless it may be
        older than the entry (the rule of ``domain.freshness``):

        - observed after the entry's answer or event for certain: it replaces it;
        - the same as the entry: nothing to do;
        - else the two were observed at overlapping times and differ, and which is
          newer cannot be told: the entry is dropped (the next reader asks XO, and an
          answer started after this one came back is newer than both). False then.
        """
        seen = Observation(start=started, end=next(self._tickets))
        last = self._observed.get((kind, key))
        self._observed[(kind, key)] = seen
        if last is not None and not seen.newer_than(last):
            if cache.get(key) == answer:
                self._observed[(kind, key)] = last
                return True
            cache.pop(key, None)
            return False
        if answer is None:
            cache.pop(key, None)
        else:
            cache[key] = answer
        return True

    async def _single_flight(
        self, key: tuple[str, str], fetch: Callable[[], Awaitable[T]], *, after: int = 0
    ) -> T:
        """One XO request per object at a time: concurrent workers missing the
        same host or pool share the answer instead of each asking XO. Only a request
        started after ticket ``after`` is shared: one older may answer for XO as it was
        before what the caller saw."""
        flight = self._inflight.get(key)
        if flight is None or flight[0] <= after:
            pending = shared(fetch())
            flight = (next(self._tickets), pending)
            self._inflight[key] = flight
            pending.add_done_callback(partial(self._landed, key, flight))
        result: T = await asyncio.shield(flight[1])
        return result

    def _landed(
        self,
        key: tuple[str, str],
        flight: tuple[int, asyncio.Future[Any]],
        _done: asyncio.Future[Any],
    ) -> None:
        """The request is back: no longer shared (unless a newer one replaced it)."""
        if self._inflight.get(key) is flight:
            del self._inflight[key]

    async def get_pool(self, *, pool_id: str) -> Pool | None:
        key = pool_id.strip().lower()
        if not key:
            return None
        pool = self._pools.get(key)
        if pool is not None:
            return pool
        logger.trace("pool {} not cached: asking XO", key)
        return await self._single_flight(("pool", key), lambda: self._fetch_pool(key))

    async def _fetch_pool(self, pool_id: str) -> Pool | None:
        """XO's answer now (never the cache: ``pools_known`` asks whether XO knows the
        pool now), settled into the cache (see :meth:`_settle`)."""
        key = pool_id.strip().lower()
        return await self._asked(
            "pool", self._pools, key, lambda: self._one("/pools", POOL_BY_ID, parse_pool, key)
        )

    async def snapshot(self) -> InventorySnapshot:
        started = next(self._tickets)
        # Each list is parsed as it arrives: a bad one cancels the others at once.
        vms, hosts, pools = await _all_or_none(
            self._list("/vms", VMS, VM_FIELDS, parse_vm),
            self._list("/hosts", HOSTS, HOST_FIELDS, parse_host),
            self._list("/pools", POOLS, POOL_FIELDS, parse_pool),
        )
        self._refresh("host", self._hosts, hosts, started)
        self._refresh("pool", self._pools, pools, started)
        self._note_vm_list(vms, started)
        logger.debug("XO snapshot: {} VMs, {} hosts, {} pools", len(vms), len(hosts), len(pools))
        return InventorySnapshot(vms=vms, hosts=hosts, pools=pools)

    async def _list(
        self, path: str, endpoint: str, fields: Sequence[str], parse: Callable[..., Listed]
    ) -> Mapping[str, Any]:
        """The objects of a list answer by id; the very last ones when the bytes are the
        same (parsing is a pure function of them: reusing its result is exact; the
        cost is keeping the last answer's bytes, about 300 per VM)."""
        last = self._last_lists.get(endpoint)

        def decode(body: Body) -> tuple[bytes, Any]:
            if last is not None and last[0] == body.content:
                return last  # the same answer: nothing to decode
            return body.content, body.json(endpoint=endpoint)

        got = await self._client.get_decoded(
            path, endpoint=endpoint, decode=decode, params={"fields": ",".join(fields)}
        )
        if got is last:
            return last[1]
        content, data = got
        items = parse_list(data, endpoint=endpoint)
        if any(not isinstance(item, dict) for item in items):
            raise ProtocolError(f"Xen Orchestra {endpoint}: expected objects in the array")
        parsed = MappingProxyType({obj.id: obj for obj in _each(items, parse, endpoint)})
        self._last_lists[endpoint] = (content, parsed)
        return parsed

    def changes(self) -> AsyncIterator[Change]:
        """VM changes from XO's event stream (or polling on older XO), RESYNC first; and
        hosts and pools updated, once the caches hold them."""
        return ChangeStream(
            client=self._client,
            policy=self._stream_policy,
            snapshot=self.snapshot,
            on_host=self._cache_host,
            on_pool=self._cache_pool,
            on_vm=self._note_vm_change,
        ).run()

    # -- cache maintenance from events ------------------------------------
    def _refresh(
        self, kind: str, cache: dict[str, T], listed: Mapping[str, T], started: int
    ) -> None:
        """Settle a list answer (asked at ticket ``started``) into ``cache``, in place
        (a lone request on its way settles into this same cache): each object listed,
        or its absence, as a lone answer would be (an entry set by an event or a
        snapshot asked later that finished first is never replaced by this list)."""
        answered = {key.lower(): obj for key, obj in listed.items()}
        for key in cache.keys() | answered.keys():
            self._settle(kind, cache, key, answered.get(key), started)

    def _note_event(self, kind: str, key: str) -> None:
        """An event is XO's word on its object as it is received: newer than every
        answer already back, older than every request started after it (one on its way
        that says otherwise drops the entry, see :meth:`_settle`)."""
        ticket = next(self._tickets)
        self._observed[(kind, key.lower())] = Observation(start=ticket, end=ticket)

    def _cache_host(self, host: Host, removed: bool) -> None:
        self._note_event("host", host.id)
        if removed:
            self._hosts.pop(host.id.lower(), None)
        else:
            self._hosts[host.id.lower()] = host

    def _cache_pool(self, pool: Pool, removed: bool) -> None:
        self._note_event("pool", pool.id)
        if removed:
            self._pools.pop(pool.id.lower(), None)
        else:
            self._pools[pool.id.lower()] = pool
