"""Leader election on a coordination.k8s.io/v1 Lease, with client-go's semantics.

Only one replica may run the controllers, or two would race on the same
Nodes. The rules, as in client-go's ``leaderelection`` package:

- a replica takes the Lease when it has no holder, or when its record has
  not changed for ``leaseDurationSeconds`` *as observed locally* (the
  monotonic time at which this replica last saw the record change, never the
  holder's timestamps, so clock skew between machines does not matter);
- the leader renews every ``retry_period``; every write is an update guarded
  by the Lease's resourceVersion, so two candidates can never both win;
- if renewals keep failing for ``renew_deadline`` (shorter than the lease
  duration), ``lost()`` returns: controllers stop *before* the Lease can
  expire and another replica start. The deadline counts from when the last
  won write was *sent*, not from when its answer came: the others count the
  lease from when they saw the write land, which is after it was sent and may
  be long before its answer reaches this replica (client-go counts from the
  answer, and says it cannot promise one leader). Seeing another holder in a valid Lease
  ends leadership at once (client-go would wait out the deadline; stopping
  sooner is strictly safer);
- ``release()`` clears the holder (and shortens the duration to 1 s), so a
  standby takes over at its next retry instead of waiting for expiry;
- given a ``fence`` (:mod:`fence`), the elector keeps it open for a renew
  deadline from each won write's sending and closes it when leadership ends,
  so the controllers' client sends no write after the instant this replica
  would give up, even when the event loop ran nothing meanwhile.

The elector should get its own client (``KubeClient.sibling``), so that
controllers exhausting their request budget cannot delay a renewal.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import math
import random
import socket
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from loguru import logger

from adapters.kubernetes.client import KubeClient
from adapters.kubernetes.convert import format_micro_time
from adapters.kubernetes.errors import ApiError
from adapters.kubernetes.fence import LeadershipFence
from adapters.kubernetes.wire import JsonObject

#: client-go's JitterFactor: acquire retries wait retry_period * [1, 1.2).
JITTER = 1.2


def default_identity() -> str:
    """``<hostname>_<uuid4>``, as the Kubernetes controller managers name themselves."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


class LeaseLeaderElector:
    """Implements ``domain.ports.LeaderElector`` on the Lease ``namespace/name``."""

    def __init__(
        self,
        client: KubeClient,
        *,
        name: str,
        namespace: str = "kube-system",
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        identity: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        fence: LeadershipFence | None = None,
    ) -> None:
        if lease_duration <= renew_deadline:
            raise ValueError("lease_duration must be greater than renew_deadline")
        if renew_deadline <= JITTER * retry_period:
            raise ValueError(f"renew_deadline must be greater than {JITTER} * retry_period")
        if retry_period <= 0:
            raise ValueError("retry_period must be positive")
        self._client = client
        self.name = name
        self.namespace = namespace
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.identity = identity or default_identity()
        self._clock = clock
        #: the controllers' writes' fence (:mod:`fence`), on this elector's ``clock``
        self._fence = fence
        self._path = (
            f"/apis/coordination.k8s.io/v1/namespaces/{quote(namespace, safe='')}"
            f"/leases/{quote(name, safe='')}"
        )
        self._lease: JsonObject | None = None  # our last written Lease, while leading
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self._other_holder = ""
        self._leading = False
        self._last_renew = 0.0
        self._lost = asyncio.Event()
        self._renewer: asyncio.Task[None] | None = None

    @property
    def is_leader(self) -> bool:
        return self._leading

    # -- the port ---------------------------------------------------------
    async def acquire(self) -> None:
        """Return once this replica holds the Lease; keeps renewing it afterwards."""
        if self._leading:
            return
        logger.info("leader election: {} trying to acquire lease {}", self.identity, self._path)
        while True:
            sent = self._clock()
            if await self._attempt(budget=self.renew_deadline) and self._fresh(sent):
                break
            await asyncio.sleep(self.retry_period * random.uniform(1.0, JITTER))
        self._leading = True
        self._renewed(sent)
        self._lost.clear()
        self._renewer = asyncio.create_task(self._renew_loop(), name=f"lease-renew-{self.name}")
        logger.info("leader election: {} acquired lease {}", self.identity, self._path)

    async def lost(self) -> None:
        await self._lost.wait()

    async def release(self) -> None:
        """Stop renewing and hand the Lease over at once (best effort).

        A renewal cancelled in flight may still reach the server (its request
        runs in a thread that cancelling cannot stop), and then this update,
        built from the Lease before that renewal, is refused as a conflict:
        re-read the Lease and release that one while it is still ours.
        """
        await self._stop_renewing()
        self._close_fence()
        if not self._leading or self._lease is None:
            self._leading = False
            return
        self._leading = False
        lease, self._lease = self._lease, None
        for _ in range(3):
            try:
                await self._client.request("PUT", self._path, body=_released(lease), retries=0)
                logger.info("leader election: {} released lease {}", self.identity, self._path)
                return
            except ApiError as err:
                if not err.conflict:
                    logger.warning(
                        "leader election: could not release lease {}: {}", self._path, err
                    )
                    return
            try:
                lease = await self._client.request("GET", self._path, retries=0)
            except ApiError as err:
                logger.warning("leader election: could not release lease {}: {}", self._path, err)
                return
            if (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return  # no longer ours: nothing to hand over
        logger.warning("leader election: lease {} kept changing; not released", self._path)

    async def stop(self) -> None:
        """Stop renewing *without* releasing: to the others, this replica crashed."""
        await self._stop_renewing()
        self._close_fence()
        self._leading = False

    # -- internals ----------------------------------------------------------
    def _renewed(self, sent: float) -> None:
        """A won write sent at ``sent``: the controllers may write for a renew deadline
        from then, the time this replica may take to give up after it."""
        self._last_renew = sent
        if self._fence is not None:
            self._fence.open_until(sent + self.renew_deadline)

    def _close_fence(self) -> None:
        if self._fence is not None:
            self._fence.close()

    async def _stop_renewing(self) -> None:
        task, self._renewer = self._renewer, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _renew_loop(self) -> None:
        """Renew until the Lease is lost; however this loop ends, short of being
        cancelled, ``lost()`` fires, so controllers never outlive a dead renewer."""
        try:
            reason = await self._renew_until_lost()
        except Exception as err:  # an unforeseen failure is a loss too, never silence
            reason = f"the renew loop failed: {type(err).__name__}: {err}"
        logger.error("leader election: {} lost lease {}: {}", self.identity, self._path, reason)
        self._close_fence()
        self._leading = False
        self._lease = None
        self._lost.set()

    async def _renew_until_lost(self) -> str:
        while True:
            await asyncio.sleep(self.retry_period)
            sent = self._clock()
            remaining = self.renew_deadline - (sent - self._last_renew)
            renewed = False
            if remaining > 0:
                try:
                    async with asyncio.timeout(remaining):
                        renewed = await self._attempt(budget=remaining)
                except TimeoutError:
                    renewed = False
            if renewed:
                self._renewed(sent)
                continue
            if self._other_holder:
                return f"lease now held by {self._other_holder}"
            if self._clock() - self._last_renew >= self.renew_deadline:
                return f"could not renew for {self.renew_deadline:g}s"

    def _fresh(self, sent: float) -> bool:
        """Whether a won write sent at ``sent`` still leaves time to lead: its answer
        may come late (a slow server, this loop busy), and the others count the
        lease from when the write landed, after ``sent``; a win answered a whole
        renew deadline late is tried again (it renews this replica's own record)."""
        return self._clock() - sent < self.renew_deadline

    async def _attempt(self, *, budget: float) -> bool:
        """One acquire-or-renew; any failure (an API error, an unreadable answer,
        a bug) is a failed attempt, so the deadline, not an exception, decides."""
        try:
            return await self._try_acquire_or_renew(budget=budget)
        except Exception as err:
            logger.warning(
                "leader election: attempt on lease {} failed: {}: {}",
                self._path,
                type(err).__name__,
                err,
            )
            self._lease = None  # re-read before the next write
            return False

    def _observe(self, lease: JsonObject) -> JsonObject:
        spec = lease.get("spec") or {}
        record = (
            spec.get("holderIdentity") or "",
            spec.get("renewTime"),
            spec.get("acquireTime"),
            spec.get("leaseTransitions"),
            spec.get("leaseDurationSeconds"),
        )
        if record != self._observed:
            self._observed = record
            self._observed_at = self._clock()
        return spec

    async def _try_acquire_or_renew(self, *, budget: float) -> bool:
        """One attempt within ``budget`` seconds of HTTP timeouts; True when this
        replica holds the Lease afterwards."""
        self._other_holder = ""
        request_timeout = (min(self._client.settings.connect_timeout, budget), budget)
        now = format_micro_time(datetime.now(UTC))
        if self._leading and self._lease is not None:  # fast path: renew what we wrote
            lease = copy.deepcopy(self._lease)
            lease["spec"]["renewTime"] = now
            try:
                self._lease = await self._write("PUT", lease, request_timeout)
                return True
            except ApiError as err:
                logger.debug("leader election: renewal failed ({}), re-reading lease", err)
                self._lease = None
        try:
            current = await self._client.request(
                "GET", self._path, request_timeout=request_timeout, retries=0
            )
        except ApiError as err:
            if not err.not_found:
                logger.debug("leader election: cannot read lease {}: {}", self._path, err)
                return False
            return await self._create(now, request_timeout)
        spec = self._observe(current)
        holder = str(spec.get("holderIdentity") or "")
        duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
        if holder and holder != self.identity and self._observed_at + duration > self._clock():
            self._other_holder = holder
            return False
        lease = copy.deepcopy(current)
        new_spec = lease.setdefault("spec", {})
        if holder != self.identity:
            new_spec["acquireTime"] = now
            new_spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        new_spec["holderIdentity"] = self.identity
        new_spec["leaseDurationSeconds"] = math.ceil(self.lease_duration)
        new_spec["renewTime"] = now
        try:
            self._lease = await self._write("PUT", lease, request_timeout)
        except ApiError as err:
            logger.debug("leader election: could not take lease {}: {}", self._path, err)
            return False
        return True

    async def _create(self, now: str, request_timeout: tuple[float, float]) -> bool:
        lease: JsonObject = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": math.ceil(self.lease_duration),
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": 0,
            },
        }
        try:
            self._lease = await self._write("POST", lease, request_timeout)
        except ApiError as err:
            logger.debug("leader election: could not create lease {}: {}", self._path, err)
            return False
        return True

    async def _write(
        self, method: str, lease: JsonObject, request_timeout: tuple[float, float]
    ) -> JsonObject:
        path = self._path.rsplit("/", 1)[0] if method == "POST" else self._path
        written = await self._client.request(
            method, path, body=lease, request_timeout=request_timeout, retries=0
        )
        self._observe(written)
        return written


def _released(lease: JsonObject) -> JsonObject:
    """``lease`` with no holder and a 1 s duration: a standby takes it at its next retry."""
    released = copy.deepcopy(lease)
    now = format_micro_time(datetime.now(UTC))
    spec = released.setdefault("spec", {})
    spec.pop("holderIdentity", None)
    spec.update({"leaseDurationSeconds": 1, "renewTime": now, "acquireTime": now})
    return released
