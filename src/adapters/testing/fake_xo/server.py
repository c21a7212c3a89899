"""The fake XO server: start it in a running loop, drive it, stop it.

::

    async with FakeXOServer(token="t") as xo:      # 127.0.0.1, a free port
        pool = xo.add_pool(name_label="lab")
        host = xo.add_host(pool_id=pool["id"], name_label="h1")
        vm = xo.add_vm(name_label="node-1")        # running on the pool master
        ... XOInventory against xo.url ...
        xo.request_counts()                         # {"GET /vms/{id}": 1, ...}

The Python methods and the ``/_control`` HTTP API are the same operations.
"""

from __future__ import annotations

import asyncio
import random
import socket
import ssl
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web
from loguru import logger

from adapters.testing.fake_xo.api import RestAPI
from adapters.testing.fake_xo.control import ControlAPI
from adapters.testing.fake_xo.events import EventHub
from adapters.testing.fake_xo.faults import AuthDB, Faults
from adapters.testing.fake_xo.objects import GIB
from adapters.testing.fake_xo.state import FakeXOState


class FakeXOServer:
    """A Xen Orchestra REST API on aiohttp, backed by a :class:`FakeXOState`.

    ``token`` (admin) and ``users`` (name -> password, admins) are accepted;
    ``state_file`` is loaded when it exists and no ``state`` is given, and
    written back by :meth:`stop` and :meth:`save_state`. ``ping_interval``
    is XO's 30 s by default: tests make it short. ``seed`` fixes the random
    5xx injection.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = "fake-xo-token",
        users: Mapping[str, str] | None = None,
        state: FakeXOState | None = None,
        ping_interval: float = 30.0,
        compact_frames: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        state_file: str | Path | None = None,
        seed: int | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.state_file = Path(state_file) if state_file else None
        if state is None and self.state_file is not None and self.state_file.exists():
            state = FakeXOState.load(self.state_file)
        self.state = state if state is not None else FakeXOState()
        self.hub = EventHub()
        self.state.listeners.append(self.hub.publish)
        self.faults = Faults()
        self.auth = AuthDB()
        if token:
            self.auth.tokens[token] = True
        for username, password in (users or {}).items():
            self.auth.users[username] = (password, True)
        self.ping_interval = ping_interval
        self.compact_frames = compact_frames
        self.ssl_context = ssl_context
        self.random = random.Random(seed)
        self.counts: Counter[str] = Counter()
        self._hang_released = asyncio.Event()
        self._runner: web.AppRunner | None = None

    # -- lifecycle ------------------------------------------------------------
    @property
    def url(self) -> str:
        """The base URL to put in a cloud config (``http(s)://host:port``)."""
        if self._runner is None:
            raise RuntimeError("the fake XO server is not started")
        scheme = "https" if self.ssl_context else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    def make_app(self) -> web.Application:
        rest = RestAPI(self)
        app = web.Application(middlewares=[rest.middleware])
        rest.register(app)
        ControlAPI(self).register(app)
        return app

    async def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        self._hang_released = asyncio.Event()
        runner = web.AppRunner(
            self.make_app(), handler_cancellation=True, access_log=None, shutdown_timeout=1.0
        )
        await runner.setup()
        try:
            await web.SockSite(runner, sock, ssl_context=self.ssl_context).start()
        except BaseException:
            await runner.cleanup()
            sock.close()
            raise
        self._runner = runner
        logger.debug("fake XO listening on {}", self.url)

    async def stop(self) -> None:
        """End event streams and hung requests, then close every connection."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self.hub.drop_all()
        self._hang_released.set()
        await runner.cleanup()
        if self.state_file is not None:
            self.save_state()
        logger.debug("fake XO stopped")

    async def __aenter__(self) -> FakeXOServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def wait_hang_released(self) -> None:
        await self._hang_released.wait()

    # -- requests ------------------------------------------------------------
    def count(self, endpoint: str) -> None:
        self.counts[endpoint] += 1

    def request_counts(self) -> dict[str, int]:
        """API requests received per endpoint template (``GET /vms/{id}``)."""
        return dict(self.counts)

    def request_report(self) -> dict[str, Any]:
        return {"counts": self.request_counts(), "total": sum(self.counts.values())}

    def reset_request_counts(self) -> None:
        self.counts.clear()

    # -- faults, auth, events ----------------------------------------------------
    def set_faults(self, **changes: Any) -> Faults:
        """Change some faults (``latency=0.1``, ``fail_next=2``, ``garbage="html"``...)."""
        self.faults.update(changes)
        if not self.faults.hang:
            self._release_hangs()
        return self.faults

    def clear_faults(self) -> Faults:
        self.faults = Faults()
        self._release_hangs()
        return self.faults

    def _release_hangs(self) -> None:
        self._hang_released.set()
        self._hang_released = asyncio.Event()

    def drop_event_streams(self) -> int:
        """Close every event stream (subscriptions are lost, as in XO)."""
        return self.hub.drop_all()

    def set_event_settings(
        self, *, ping_interval: float | None = None, compact: bool | None = None
    ) -> dict[str, Any]:
        if ping_interval is not None:
            if ping_interval <= 0:
                raise ValueError("ping_interval must be positive")
            self.ping_interval = float(ping_interval)
        if compact is not None:
            self.compact_frames = bool(compact)
        return {"ping_interval": self.ping_interval, "compact": self.compact_frames}

    def add_token(self, *, token: str, admin: bool = True) -> None:
        self.auth.tokens[token] = admin

    def revoke_token(self, token: str) -> None:
        self.auth.tokens.pop(token, None)

    def add_user(self, *, username: str, password: str, admin: bool = True) -> None:
        self.auth.users[username] = (password, admin)

    # -- the world (see FakeXOState) --------------------------------------------
    def add_pool(self, *, name_label: str, pool_id: str | None = None) -> dict[str, Any]:
        return self.state.add_pool(name_label=name_label, pool_id=pool_id)

    def add_host(
        self, *, pool_id: str, name_label: str, host_id: str | None = None
    ) -> dict[str, Any]:
        return self.state.add_host(pool_id=pool_id, name_label=name_label, host_id=host_id)

    def add_vm(
        self,
        *,
        name_label: str,
        vm_id: str | None = None,
        pool_id: str | None = None,
        host_id: str | None = None,
        power_state: str = "Running",
        cpus: int = 2,
        memory: int = 4 * GIB,
        addresses: Mapping[str, str] | None = None,
        tags: Sequence[str] = (),
    ) -> dict[str, Any]:
        return self.state.add_vm(
            name_label=name_label,
            vm_id=vm_id,
            pool_id=pool_id,
            host_id=host_id,
            power_state=power_state,
            cpus=cpus,
            memory=memory,
            addresses=addresses,
            tags=tags,
        )

    def populate(
        self, *, count: int, pool_id: str | None = None, prefix: str = "vm", running: bool = True
    ) -> list[dict[str, Any]]:
        return self.state.populate(vms=count, pool_id=pool_id, prefix=prefix, running=running)

    def delete_vm(self, vm_id: str) -> dict[str, Any]:
        return self.state.delete_vm(vm_id)

    def migrate_vm(self, vm_id: str, *, host_id: str) -> dict[str, Any]:
        return self.state.migrate_vm(vm_id, host_id=host_id)

    def start_vm(self, vm_id: str, *, host_id: str | None = None) -> dict[str, Any]:
        return self.state.start_vm(vm_id, host_id=host_id)

    def stop_vm(self, vm_id: str) -> dict[str, Any]:
        return self.state.stop_vm(vm_id)

    def rename_vm(self, vm_id: str, *, name_label: str) -> dict[str, Any]:
        return self.state.rename_vm(vm_id, name_label=name_label)

    def resize_vm(
        self, vm_id: str, *, cpus: int | None = None, memory: int | None = None
    ) -> dict[str, Any]:
        return self.state.resize_vm(vm_id, cpus=cpus, memory=memory)

    def tag_vm(self, vm_id: str, *, tags: Sequence[str]) -> dict[str, Any]:
        return self.state.tag_vm(vm_id, tags=tags)

    def set_addresses(self, vm_id: str, *, addresses: Mapping[str, str]) -> dict[str, Any]:
        return self.state.set_addresses(vm_id, addresses=addresses)

    def patch_vm(self, vm_id: str, *, fields: Mapping[str, Any]) -> dict[str, Any]:
        return self.state.patch_vm(vm_id, fields=fields)

    def disconnect_pool(self, pool_id: str) -> None:
        self.state.disconnect_pool(pool_id)

    def reconnect_pool(self, pool_id: str) -> None:
        self.state.reconnect_pool(pool_id)

    # -- persistence ----------------------------------------------------------------
    def save_state(self, path: str | Path | None = None) -> dict[str, str]:
        target = Path(path) if path else self.state_file
        if target is None:
            raise ValueError("no path given and the server has no --state file")
        self.state.save(target)
        return {"path": str(target)}
