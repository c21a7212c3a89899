"""The fake XO's control API under ``/_control``: drive the world over HTTP.

Tests in another process, the demo and benchmarks use it to add, delete,
migrate, start, stop, rename, resize and tag VMs, add and tag hosts and pools,
disconnect pools, inject faults and read request counts. JSON in, JSON out;
not authenticated (the server binds loopback by default) and never counted.

Every route maps onto one method of the server's parts (the state, the
fault injector, the event hub, the users, the request counter), so
in-process tests and HTTP clients drive exactly the same code.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from entrypoints.testkits.fake_xo.parts import Parts
from entrypoints.testkits.fake_xo.state import StateError

PREFIX = "/_control"
Body = dict[str, Any]
Action = Callable[[web.Request, Body], Any]


def _fail(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class ControlAPI:
    """The ``/_control`` routes over one server's parts; ``save_state`` writes the
    world to a file (the body's ``path``, else the server's ``--state`` file)."""

    def __init__(self, parts: Parts, *, save_state: Callable[[str | None], dict[str, str]]) -> None:
        self.parts = parts
        self.save_state = save_state

    def register(self, app: web.Application) -> None:
        p = self.parts
        state, hub, faults, auth, counter = p.state, p.hub, p.faults, p.auth, p.requests
        vm = f"{PREFIX}/vms/{{id}}"
        routes: list[tuple[str, str, Action, int]] = [
            ("GET", f"{PREFIX}/state", lambda r, b: state.to_json(), 200),
            ("POST", f"{PREFIX}/state/save", lambda r, b: self.save_state(b.get("path")), 200),
            ("POST", f"{PREFIX}/pools", lambda r, b: state.add_pool(**_args(b, POOL)), 201),
            ("POST", f"{PREFIX}/pools/{{id}}/disconnect", self._pool(state.disconnect_pool), 200),
            (
                "POST",
                f"{PREFIX}/pools/{{id}}/reconnect",
                lambda r, b: state.reconnect_pool(_id(r), **_args(b, RECONNECT)),
                200,
            ),
            ("POST", f"{PREFIX}/pools/{{id}}/load-vms", self._pool(state.load_pool_vms), 200),
            (
                "POST",
                f"{PREFIX}/pools/{{id}}/events-failing",
                lambda r, b: state.events_failing(_id(r), b.get("error")),
                200,
            ),
            ("POST", f"{PREFIX}/pools/{{id}}/tags", lambda r, b: state.tag_pool(_id(r), **b), 200),
            ("POST", f"{PREFIX}/hosts", lambda r, b: state.add_host(**_args(b, HOST)), 201),
            ("POST", f"{PREFIX}/hosts/{{id}}/tags", lambda r, b: state.tag_host(_id(r), **b), 200),
            ("POST", f"{PREFIX}/vms", lambda r, b: state.add_vm(**_args(b, VM)), 201),
            ("POST", f"{PREFIX}/vms/populate", lambda r, b: _ids(state.populate(**b)), 201),
            ("DELETE", vm, lambda r, b: state.delete_vm(_id(r)), 200),
            ("POST", f"{vm}/migrate", lambda r, b: state.migrate_vm(_id(r), **b), 200),
            ("POST", f"{vm}/start", lambda r, b: state.start_vm(_id(r), **b), 200),
            ("POST", f"{vm}/stop", lambda r, b: state.stop_vm(_id(r)), 200),
            ("POST", f"{vm}/rename", lambda r, b: state.rename_vm(_id(r), **b), 200),
            ("POST", f"{vm}/resize", lambda r, b: state.resize_vm(_id(r), **b), 200),
            ("POST", f"{vm}/tags", lambda r, b: state.tag_vm(_id(r), **b), 200),
            ("POST", f"{vm}/addresses", lambda r, b: state.set_addresses(_id(r), **b), 200),
            ("PATCH", vm, lambda r, b: state.patch_vm(_id(r), fields=b), 200),
            ("GET", f"{PREFIX}/faults", lambda r, b: faults.active.to_json(), 200),
            ("POST", f"{PREFIX}/faults", lambda r, b: faults.set(**b).to_json(), 200),
            ("DELETE", f"{PREFIX}/faults", lambda r, b: faults.clear().to_json(), 200),
            ("POST", f"{PREFIX}/events/drop", lambda r, b: {"dropped": hub.drop_all()}, 200),
            ("POST", f"{PREFIX}/events/settings", lambda r, b: hub.configure(**b), 200),
            ("POST", f"{PREFIX}/tokens", lambda r, b: auth.add_token(**b), 201),
            ("DELETE", f"{PREFIX}/tokens/{{token}}", self._revoke, 200),
            ("POST", f"{PREFIX}/users", lambda r, b: auth.add_user(**b), 201),
            ("GET", f"{PREFIX}/requests", lambda r, b: counter.report(), 200),
            ("DELETE", f"{PREFIX}/requests", lambda r, b: counter.reset(), 200),
        ]
        for method, path, action, status in routes:
            app.router.add_route(method, path, self._wrap(action, status))

    @staticmethod
    def _pool(method: Callable[[str], None]) -> Action:
        return lambda request, body: method(request.match_info["id"])

    def _revoke(self, request: web.Request, body: Body) -> None:
        self.parts.auth.revoke_token(request.match_info["token"])

    @staticmethod
    def _wrap(action: Action, status: int) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            body: Body = {}
            if request.can_read_body:
                try:
                    raw = await request.json()
                except ValueError:
                    return _fail(400, "the body must be a JSON object")
                if raw is not None and not isinstance(raw, dict):
                    return _fail(400, "the body must be a JSON object")
                body = raw or {}
            try:
                result = action(request, body)
            except StateError as err:
                return _fail(err.status, str(err))
            except (TypeError, ValueError) as err:
                return _fail(422, str(err))
            return web.json_response(result if result is not None else {}, status=status)

        return handle


POOL = {"name_label": "name_label", "id": "pool_id", "tags": "tags"}
RECONNECT = {"vms_loaded": "vms_loaded"}
HOST = {"name_label": "name_label", "id": "host_id", "pool_id": "pool_id", "tags": "tags"}
VM = {
    "name_label": "name_label",
    "id": "vm_id",
    "pool_id": "pool_id",
    "host_id": "host_id",
    "power_state": "power_state",
    "cpus": "cpus",
    "memory": "memory",
    "addresses": "addresses",
    "tags": "tags",
}


def _args(body: Body, names: dict[str, str]) -> dict[str, Any]:
    """JSON keys to keyword arguments (``id`` becomes ``vm_id``...); unknown keys refused."""
    unknown = set(body) - set(names)
    if unknown:
        raise ValueError(f"unknown key(s): {', '.join(sorted(unknown))}")
    return {names[k]: v for k, v in body.items()}


def _id(request: web.Request) -> str:
    return request.match_info["id"]


def _ids(vms: list[dict[str, Any]]) -> dict[str, Any]:
    return {"ids": [vm["id"] for vm in vms]}
