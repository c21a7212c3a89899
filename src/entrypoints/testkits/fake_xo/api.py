"""The fake XO's REST API (``/rest/v0``), as ``xo-rest-api.md`` describes it.

One middleware does what every real request goes through, in XO's order:
counting (per endpoint template, for benchmarks), injected faults,
authentication; then the handler; then garbage-body faults on the way out.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web

from entrypoints.testkits.fake_xo import garbage
from entrypoints.testkits.fake_xo.events import LISTENER_TYPES
from entrypoints.testkits.fake_xo.exchanges import Exchange
from entrypoints.testkits.fake_xo.faults import Principal
from entrypoints.testkits.fake_xo.matcher import FilterSyntaxError, parse_filter
from entrypoints.testkits.fake_xo.objects import pick
from entrypoints.testkits.fake_xo.parts import Parts
from entrypoints.testkits.fake_xo.state import COLLECTIONS

API = "/rest/v0"
PING = "GET /ping"
EVENTS = "GET /events"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MULTIPLE_AUTH = "Having multiple authentication methods is not supported, please choose one"
PRINCIPAL_KEY = web.RequestKey("xo_principal", Principal)
#: What XO's event service sets on a stream (``event.service.mjs``).
SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Connection": "keep-alive",
    "Cache-Control": "no-cache, no-transform",
}


def error(
    status: int,
    message: str,
    *,
    data: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """XO's error body: ``{"error": message, "data": ...}``."""
    body: dict[str, Any] = {"error": message}
    if data is not None:
        body["data"] = data
    return web.json_response(body, status=status, headers=headers)


def pretty(data: Any, *, status: int = 200) -> web.Response:
    """XO pretty-prints JSON (and gzips it when the client accepts gzip)."""
    response = web.Response(
        text=json.dumps(data, indent=2), status=status, content_type="application/json"
    )
    response.enable_compression()
    return response


def endpoint_of(request: web.Request) -> str:
    """``GET /vms/{id}``: the route template without the API prefix."""
    resource = request.match_info.route.resource
    template = resource.canonical if resource is not None else "(unmatched)"
    return f"{request.method} {template.removeprefix(API)}"


def _garble(response: web.Response, mode: str, target: str | None = None) -> web.Response:
    if mode in garbage.MODES:
        body = response.body if isinstance(response.body, bytes) else b""
        spoiled = garbage.garble_body(body, mode, target)
        if spoiled is None:
            return response
        return web.Response(body=spoiled[0], headers=spoiled[1], content_type="application/json")
    if mode == "html":
        return web.Response(
            text="<html><body><h1>502 Bad Gateway</h1></body></html>", content_type="text/html"
        )
    if mode == "truncated":
        return web.Response(text='[{"id": "f07ab729-', content_type="application/json")
    try:
        data = json.loads(response.body) if isinstance(response.body, bytes) else None
    except ValueError:
        data = None
    if mode == "shape":
        return pretty({"items": data} if isinstance(data, list) else ["unexpected"])
    # "no-id": the same objects without their id
    if isinstance(data, list):
        return pretty([{k: v for k, v in o.items() if k != "id"} for o in data])
    if isinstance(data, dict):
        return pretty({k: v for k, v in data.items() if k != "id"})
    return response


def _exchange(request: web.Request, body: bytes, response: web.StreamResponse) -> Exchange:
    """What the spec check sees of one request and its answer (a stream has no body)."""
    answered = response.body if isinstance(response, web.Response) else None
    return Exchange(
        method=request.method,
        path=request.path,
        query=tuple(request.query.items()),
        headers=tuple(request.headers.items()),
        request_body=body,
        status=response.status,
        content_type=response.content_type,
        body=answered if isinstance(answered, bytes) else None,
    )


class RestAPI:
    """Handlers bound to one world (state), its event hub, faults, users and counter."""

    def __init__(self, parts: Parts) -> None:
        self.state = parts.state
        self.hub = parts.hub
        self.faults = parts.faults
        self.auth = parts.auth
        self.counter = parts.requests
        self.exchanges = parts.exchanges

    def register(self, app: web.Application) -> None:
        r = app.router
        r.add_get(f"{API}/ping", self.ping)
        for collection, type_ in COLLECTIONS.items():
            r.add_get(f"{API}/{collection}", self._lister(collection, self._visible(type_)))
            r.add_get(f"{API}/{collection}/{{id}}", self._getter(type_))
        r.add_get(f"{API}/servers", self._lister("servers", self.state.servers))
        r.add_get(
            f"{API}/vm-controllers", self._lister("vm-controllers", self.state.vm_controllers)
        )
        r.add_get(f"{API}/users/me", self.current_user)
        r.add_get(f"{API}/users/{{id}}", self.user)
        r.add_get(f"{API}/events", self.events)
        r.add_post(f"{API}/events/{{id}}/subscriptions", self.subscribe)
        r.add_delete(f"{API}/events/{{id}}/subscriptions/{{subscriptionId}}", self.unsubscribe)

    # -- middleware ---------------------------------------------------------
    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(API + "/"):
            return await handler(request)
        endpoint = endpoint_of(request)
        self.counter.count(endpoint)
        request_body = await request.read() if self.exchanges.recording else b""
        response = await self._answer(request, handler, endpoint)
        if self.exchanges.recording and isinstance(response, web.Response):
            # (a stream records itself once open: its handler ends when the client goes)
            self.exchanges.record(_exchange(request, request_body, response))
        return response

    async def _answer(
        self, request: web.Request, handler: Handler, endpoint: str
    ) -> web.StreamResponse:
        if endpoint != PING:
            injected = await self.faults.inject(endpoint)
            if injected is not None:
                return error(injected.status, injected.message, headers=injected.headers)
        if endpoint != PING:
            denied = self._authenticate(request)
            if denied is not None:
                return denied
        try:
            response = await handler(request)
        except web.HTTPNotFound:
            return error(404, "no such route")
        except web.HTTPMethodNotAllowed:
            return error(405, "method not allowed")
        garbage = self.faults.active.garbage
        if (
            garbage
            and self.faults.applies_to(endpoint)
            and isinstance(response, web.Response)
            and 200 <= response.status < 300
            and endpoint != EVENTS
        ):
            return _garble(response, garbage, self.faults.active.target)
        return response

    def _authenticate(self, request: web.Request) -> web.Response | None:
        token = request.cookies.get("authenticationToken") or request.cookies.get("token")
        authorization = request.headers.get("Authorization")
        if token and authorization:
            return error(400, MULTIPLE_AUTH)
        principal: Principal | None = None
        if token:
            principal = self.auth.principal(token)
        elif authorization:
            checked = self.auth.check_basic(authorization)
            if checked == "throttled":
                return error(500, "too fast authentication tries")
            principal = checked
        if principal is None:
            if self.faults.active.legacy_auth_errors:
                return web.Response(status=401, text="Unauthorized", content_type="text/plain")
            return error(
                401, "invalid credentials", headers={"WWW-Authenticate": 'Basic realm="xo"'}
            )
        request[PRINCIPAL_KEY] = principal
        return None

    # -- handlers -------------------------------------------------------------
    async def ping(self, request: web.Request) -> web.Response:
        return web.json_response({"result": "pong", "timestamp": int(time.time() * 1000)})

    def _visible(self, type_: str) -> Callable[[], Iterable[dict[str, Any]]]:
        return lambda: self.state.all_visible(type_)

    def _lister(self, collection: str, listed: Callable[[], Iterable[dict[str, Any]]]) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            query = request.query
            who = request[PRINCIPAL_KEY]
            objs = list(listed())
            if not who.admin:
                objs = [o for o in objs if who.sees is not None and o["id"] in who.sees]
            if "filter" in query:
                try:
                    matcher = parse_filter(query["filter"])
                except FilterSyntaxError as err:
                    return error(400, str(err))
                objs = [o for o in objs if matcher.match(o)]
            if "limit" in query:
                try:
                    limit = int(query["limit"])
                    if limit < 0:
                        raise ValueError(limit)
                except ValueError:
                    return error(422, "invalid parameters", data={"limit": query["limit"]})
                objs = objs[:limit]
            fields = query.get("fields")
            items: list[Any] = []
            for obj in objs:
                href = f"{API}/{collection}/{obj['id']}"
                if fields is None:
                    items.append(href)
                elif fields == "*":
                    items.append({**obj, "href": href})
                else:
                    items.append({**pick(obj, fields.split(",")), "href": href})
            if query.get("ndjson") == "true":
                lines = "".join(json.dumps(item) + "\n" for item in items)
                return web.Response(text=lines, content_type="application/x-ndjson")
            return pretty(items)

        return handle

    def _getter(self, type_: str) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            obj_id = request.match_info["id"]
            obj = self.state.get(type_, obj_id)
            who = request[PRINCIPAL_KEY]
            # An ACL-limited token cannot tell an object it may not see from a missing one.
            hidden = not who.admin and who.sees is not None and obj_id.lower() not in who.sees
            if obj is None or hidden:
                return error(404, f"no such {type_} {obj_id}", data={"id": obj_id, "type": type_})
            if not who.admin and who.sees is None:
                return error(403, "not enough privileges", data={"id": obj_id, "type": type_})
            return pretty(obj)

        return handle

    # -- users ------------------------------------------------------------------
    async def current_user(self, request: web.Request) -> web.StreamResponse:
        """XO's ``/users/me`` alias: a 307 to the current user's own path, query kept."""
        if not self.faults.active.users_enabled:
            return error(404, "no such route")
        who = request[PRINCIPAL_KEY]
        target = f"{API}/users/{who.user_id}"
        if request.query_string:
            target += f"?{request.query_string}"
        return web.Response(status=307, headers={"Location": target})

    async def user(self, request: web.Request) -> web.StreamResponse:
        """A user record: anyone may read their own; only admins others'."""
        if not self.faults.active.users_enabled:
            return error(404, "no such route")
        who = request[PRINCIPAL_KEY]
        user_id = request.match_info["id"]
        if user_id != who.user_id:
            if not who.admin:
                return error(403, "not enough privileges", data={"id": user_id, "type": "user"})
            return error(404, f"no such user {user_id}", data={"id": user_id, "type": "user"})
        record: dict[str, Any] = {
            "id": who.user_id,
            "name": f"user-{who.user_id[:8]}",
            "email": f"user-{who.user_id[:8]}",
            "permission": "admin" if who.admin else "none",
            "groups": [],
            "preferences": {},
        }
        return pretty(record)

    # -- events ----------------------------------------------------------------
    async def events(self, request: web.Request) -> web.StreamResponse:
        if not self.faults.active.events_enabled:
            return web.Response(
                status=404, text="Cannot GET /rest/v0/events", content_type="text/html"
            )
        response = web.StreamResponse(headers=SSE_HEADERS)
        await response.prepare(request)
        if self.exchanges.recording:
            self.exchanges.record(_exchange(request, b"", response))
        conn = self.hub.open()
        loop = asyncio.get_running_loop()

        async def send(event: str, data: Any) -> None:
            await response.write(self._frame(event, data))

        try:
            await send("init", {"id": conn.id})
            due = self.hub.next_ping(loop.time())
            while True:
                try:
                    async with asyncio.timeout_at(due):
                        frame = await conn.queue.get()
                except TimeoutError:
                    due = self.hub.next_ping(max(loop.time(), due))
                    if self.faults.active.mute_pings:
                        continue
                    frame = ("ping", {"ping": int(time.time() * 1000)})
                if frame is None:
                    break
                await send(*frame)
        except ConnectionError:
            pass  # the client went away
        finally:
            self.hub.close(conn.id)
        return response

    def _frame(self, event: str, data: Any) -> bytes:
        """The frame as the hub encodes it, unless ``garble_frames`` spoils this VM frame."""
        faults = self.faults.active
        is_vm = isinstance(data, dict) and data.get("$subscription") == "VM"
        if faults.garble_frames <= 0 or not is_vm or event not in ("add", "update", "remove"):
            return self.hub.frame(event, data)
        faults.garble_frames -= 1
        text = garbage.garble_frame_data(data, faults.garbage or "html")
        return f"event: {event}\ndata: {text}\n\n".encode()

    async def subscribe(self, request: web.Request) -> web.Response:
        """XO validates the body first (422), then looks the connection up (404)."""
        connection = request.match_info["id"]
        try:
            body = await request.json()
        except ValueError:
            return error(400, "invalid JSON body")
        collection = body.get("collection") if isinstance(body, dict) else None
        fields = body.get("fields") if isinstance(body, dict) else None
        if collection not in LISTENER_TYPES or not (
            fields is None
            or fields == "*"
            or (isinstance(fields, list) and all(isinstance(f, str) for f in fields))
        ):
            return error(422, "invalid parameters", data={"collection": collection})
        picked = None if fields in (None, "*") else fields
        if not self.hub.subscribe(connection, collection, picked):
            return _no_such_event(connection)
        return web.json_response({"id": collection}, status=201)

    async def unsubscribe(self, request: web.Request) -> web.Response:
        connection, collection = request.match_info["id"], request.match_info["subscriptionId"]
        if collection not in LISTENER_TYPES:
            return error(422, "invalid parameters", data={"subscriptionId": collection})
        if not self.hub.unsubscribe(connection, collection):
            return _no_such_event(connection)
        return web.Response(status=204)


def _no_such_event(connection: str) -> web.Response:
    """XO's ``noSuchObject(id, 'event')`` for a connection id it does not know."""
    return error(404, f"no such event {connection}", data={"id": connection, "type": "event"})
