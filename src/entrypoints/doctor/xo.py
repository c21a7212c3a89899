"""Xen Orchestra: ping, credentials, one snapshot, the event stream; and their verdicts.

Requests: ``GET /ping``, one ``GET /vms?limit=1`` (credentials), one snapshot
(``GET /vms``, ``/hosts``, ``/pools`` with field lists), ``GET /users/me`` and its
redirect (are the credentials an admin's?), the events endpoint opened and closed at
once, and, only when XO lists no pool, one ``GET /pools/{id}`` to tell a non-admin
token from a lost pool.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import quote

from adapters.config import CloudConfig
from adapters.xenorchestra import XOHttpClient, XOInventory
from adapters.xenorchestra.http import ADMIN_HINT, TLSError, XONotFound
from domain.errors import (
    AuthenticationError,
    InventoryError,
    ProtocolError,
    UnavailableError,
)
from domain.model import InventorySnapshot, PoolPresence
from entrypoints.container import Container, provide
from entrypoints.doctor.config import auth_method
from entrypoints.doctor.findings import (
    XO_ADMIN,
    XO_EVENTS,
    XO_REACHABLE,
    XO_TLS,
    XO_TOKEN,
    Finding,
    fail,
    ok,
    plural,
    redact_url,
    unknown,
    warn,
)


class XOProblem(StrEnum):
    """Why a request to XO failed, as far as the fix is concerned."""

    CA_FILE = "ca-file"  # caFile cannot be loaded
    TLS = "tls"  # handshake or verification failed
    UNREACHABLE = "unreachable"  # no answer: connection, DNS, timeout, 5xx until the deadline
    NOT_XO = "not-xo"  # something answers, but not XO's REST API
    REFUSED = "refused"  # 401: credentials refused
    FORBIDDEN = "forbidden"  # 403: not an admin
    PROTOCOL = "protocol"  # XO answered what its API does not document


def diagnose_xo_failure(
    problem: XOProblem, *, url: str, detail: str, insecure: bool = False, ca_file: str = ""
) -> Finding:
    """The finding for a failed XO request; what follows it cannot be checked."""
    shown = redact_url(url)
    if problem is XOProblem.CA_FILE:
        return fail(
            XO_TLS,
            shown,
            detail,
            "caFile must name a readable PEM file holding the CA that signed XO's certificate",
        )
    if problem is XOProblem.TLS:
        fix = (
            f"caFile {ca_file} is not the CA that signed XO's certificate: point caFile at the "
            "right CA (or, insecurely, set insecure: true)"
            if ca_file
            else "set caFile to the CA that signed XO's certificate (or, insecurely, "
            "insecure: true)"
        )
        return fail(XO_TLS, shown, f"TLS verification failed: {detail}", fix)
    if problem is XOProblem.UNREACHABLE:
        return unknown(
            XO_REACHABLE,
            shown,
            f"XO does not answer: {detail}",
            "check url (host and port) and that this machine (the CCM's pod network) "
            "can reach XO: DNS, routes, firewalls, proxies",
        )
    if problem is XOProblem.NOT_XO:
        return fail(
            XO_REACHABLE,
            shown,
            f"this is not XO's REST API: {detail}",
            "url must be XO's base address (the one of its web UI), without /rest/v0; "
            "XO 5.100 or newer is needed for the REST API",
        )
    if problem is XOProblem.REFUSED:
        return fail(
            XO_TOKEN,
            shown,
            f"XO refused the credentials: {detail}",
            "create a new token for an XO admin (XO > User > Authentication tokens, or "
            "`xo-cli create-token`) and put it in token",
        )
    if problem is XOProblem.FORBIDDEN:
        return fail(
            XO_ADMIN,
            shown,
            f"the credentials are not an admin's: {detail}",
            "use a token of an XO admin: the CCM lists every VM, host and pool",
        )
    return fail(
        XO_REACHABLE,
        shown,
        f"XO answered something its API does not document: {detail}",
        "check that url reaches XO directly (not an HTML login page or proxy error)",
    )


def diagnose_xo_reachable(url: str) -> Finding:
    return ok(XO_REACHABLE, redact_url(url), "XO's REST API answers (GET /rest/v0/ping)")


def diagnose_xo_token(url: str, auth_method: str) -> Finding:
    return ok(XO_TOKEN, redact_url(url), f"XO accepts the {auth_method} credentials")


class ProbeAnswer(StrEnum):
    """XO's answer to ``GET /pools/{id}`` for a pool the nodes name."""

    FOUND = "found"
    NOT_FOUND = "not-found"
    FORBIDDEN = "forbidden"


def diagnose_xo_access(
    *,
    url: str,
    vms: int,
    hosts: int,
    pools: int,
    probe_pool: str = "",
    probe: ProbeAnswer | None = None,
    admin_view: bool | None = True,
    admin_detail: str = "",
) -> Finding:
    """Whether the credentials see everything (an admin's) or only what ACLs allow.

    XO's own user record says it (``admin_view``: ``permission`` of ``/users/me``).
    XO answers a non-admin's lists with what its ACLs allow, often ``[]``:
    an empty pool list is the symptom; a 403 on a pool the nodes name proves it.
    """
    shown = redact_url(url)
    seen = f"{plural(vms, 'VM')}, {plural(hosts, 'host')}, {plural(pools, 'pool')}"
    fix = "use a token of an XO admin: the CCM must list every VM, host and pool"
    if admin_view is False:
        forbidden = (
            f" and answers 403 for pool {probe_pool}, which the nodes name"
            if probe is ProbeAnswer.FORBIDDEN
            else ""
        )
        return fail(
            XO_ADMIN,
            shown,
            f"the credentials are not an admin's, XO says: it lists {seen} (what their ACLs "
            f"allow){forbidden}; a VM they may not see answers 404 like a deleted one, so "
            "cloud-node-lifecycle deletes no node while they are used",
            fix,
        )
    if admin_view is None and pools:
        return warn(
            XO_ADMIN,
            shown,
            f"lists {seen}, but XO could not say whether the credentials are an admin's "
            f"({admin_detail}): cloud-node-lifecycle deletes no node until it can",
            "check GET /rest/v0/users/me answers with this token",
        )
    if pools:
        return ok(XO_ADMIN, shown, f"lists {seen}; XO says the credentials are an admin's")
    if probe is ProbeAnswer.FORBIDDEN:
        return fail(
            XO_ADMIN,
            shown,
            f"the credentials are not an admin's: XO lists no pool and answers 403 for "
            f"pool {probe_pool}, which the nodes name",
            fix,
        )
    if probe is ProbeAnswer.NOT_FOUND:
        return fail(
            XO_ADMIN,
            shown,
            f"XO lists no pool and does not know pool {probe_pool}, which the nodes name: "
            "wrong XO, or XO lost its pools",
            "check url points at the XO managing this cluster's VMs, and that the pools are "
            "connected (XO > Settings > Servers)",
        )
    return fail(
        XO_ADMIN,
        shown,
        f"XO lists {seen}: the credentials are not an admin's (non-admins see only what "
        "their ACLs allow), or XO has no pool connected",
        fix + "; and connect the pools in XO > Settings > Servers",
    )


def diagnose_events(url: str, *, available: bool | None, detail: str = "") -> Finding:
    """The change stream (``GET /rest/v0/events``, XO 5.113+)."""
    shown = redact_url(url)
    if available:
        return ok(XO_EVENTS, shown, "XO has the events endpoint: the CCM follows VM changes live")
    if available is None:
        return warn(
            XO_EVENTS,
            shown,
            f"could not open XO's event stream: {detail}",
            "the CCM retries it and polls meanwhile; check proxies let text/event-stream through",
        )
    return warn(
        XO_EVENTS,
        shown,
        "XO has no events endpoint (older than 5.113): the CCM polls every 30s, so it "
        "notices deleted, halted or migrated VMs later",
        "upgrade XO to 5.113 or newer",
    )


EVENTS_ENDPOINT = "GET /events"


class CountingObserver:
    """Counts XO requests per endpoint template (each retry attempt counts)."""

    def __init__(self, counts: Counter[str]) -> None:
        self.counts = counts

    def observe_xo_request(self, *, endpoint: str, seconds: float, error: str | None) -> None:
        self.counts[endpoint] += 1


def problem_of(err: InventoryError) -> XOProblem:
    if isinstance(err, TLSError):
        return XOProblem.TLS
    if isinstance(err, XONotFound):
        return XOProblem.NOT_XO
    if isinstance(err, AuthenticationError):
        return XOProblem.FORBIDDEN if err.status == 403 else XOProblem.REFUSED
    if isinstance(err, ProtocolError):
        return XOProblem.PROTOCOL
    if isinstance(err, UnavailableError):
        return XOProblem.UNREACHABLE
    return XOProblem.PROTOCOL


def detail_of(err: BaseException) -> str:
    """The adapter's message without its own advice (the finding's fix gives better)."""
    text = str(err).removesuffix(f": {ADMIN_HINT}")
    return text.split("; set caFile", 1)[0]


@dataclass
class XOReading:
    """What XO told us (``snapshot`` None when it could not be read)."""

    findings: list[Finding] = field(default_factory=list)
    client: XOHttpClient | None = None
    snapshot: InventorySnapshot | None = None
    events: bool | None = None
    events_detail: str = ""
    #: XO's word on the credentials (``admin_view``); None: it could not say
    admin: bool | None = None
    admin_detail: str = ""
    #: the adapter that read it (doctor asks it again about pools of missing VMs)
    inventory: XOInventory | None = None


async def read_xo(container: Container, config: CloudConfig, *, wait: float) -> XOReading:
    """Ping, credentials, snapshot and event stream, through the container's XO adapter."""
    out = XOReading()
    url = config.url
    ca_file = str(config.ca_file) if config.ca_file else ""

    def failed(problem: XOProblem, err: BaseException) -> XOReading:
        out.findings.append(
            diagnose_xo_failure(
                problem, url=url, detail=detail_of(err), insecure=config.insecure, ca_file=ca_file
            )
        )
        return out

    try:
        inventory = await provide(container.inventory)
    except InventoryError as err:  # building the adapter only fails on the CA file
        return failed(XOProblem.CA_FILE, err)
    client = inventory.client

    try:
        pong = await client.get_json("/ping", endpoint="GET /ping")
    except XONotFound:
        return failed(XOProblem.NOT_XO, InventoryError("GET /rest/v0/ping answers 404"))
    except ProtocolError as err:
        return failed(XOProblem.NOT_XO, err)
    except InventoryError as err:
        return failed(problem_of(err), err)
    if not (isinstance(pong, dict) and pong.get("result") == "pong"):
        return failed(XOProblem.NOT_XO, InventoryError("GET /rest/v0/ping does not answer pong"))
    out.findings.append(diagnose_xo_reachable(url))

    try:
        await inventory.check()
    except InventoryError as err:
        return failed(problem_of(err), err)
    out.findings.append(diagnose_xo_token(url, auth_method(config)))

    try:
        out.snapshot = await inventory.snapshot()
    except InventoryError as err:
        return failed(problem_of(err), err)
    out.client, out.inventory = client, inventory
    try:
        out.admin = await inventory.admin_view()
    except InventoryError as err:
        out.admin_detail = detail_of(err)
    out.events, out.events_detail = await probe_events(client, wait)
    return out


async def pools_without_vms(inventory: XOInventory, pools: Collection[str]) -> frozenset[str]:
    """Which of ``pools`` XO holds without their VMs, asked as the lifecycle controller
    asks before a deletion (two requests per pool): a VM missing there is not deleted.
    None said when XO does not answer (its other findings say why)."""
    if not pools:
        return frozenset()
    try:
        presence = await inventory.pools_known(pool_ids=list(pools))
    except InventoryError:
        return frozenset()
    return frozenset(p for p, held in presence.items() if held is PoolPresence.WITHOUT_VMS)


async def probe_events(client: XOHttpClient, wait: float) -> tuple[bool | None, str]:
    """Open the event stream and close it at once: 404 means no events endpoint."""
    try:
        async with (
            asyncio.timeout(wait),
            client.stream("/events", endpoint=EVENTS_ENDPOINT) as response,
        ):
            kind = response.headers.get("content-type", "")
            if "text/event-stream" in kind:
                return True, ""
            return None, f"GET /rest/v0/events answered {kind or 'no content type'}"
    except XONotFound:
        return False, ""
    except TimeoutError:
        return None, f"no answer within {wait:g}s"
    except InventoryError as err:
        return None, str(err)


async def probe_pool(client: XOHttpClient, pool_id: str) -> ProbeAnswer | None:
    try:
        await client.get_json(f"/pools/{quote(pool_id, safe='')}", endpoint="GET /pools/{id}")
    except XONotFound:
        return ProbeAnswer.NOT_FOUND
    except AuthenticationError as err:
        return ProbeAnswer.FORBIDDEN if problem_of(err) is XOProblem.FORBIDDEN else None
    except InventoryError:
        return None
    return ProbeAnswer.FOUND
