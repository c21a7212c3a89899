"""The fake XO server: start it in a running loop, drive it, stop it.

::

    async with FakeXOServer(token="t") as xo:            # 127.0.0.1, a free port
        pool = xo.state.add_pool(name_label="lab")
        host = xo.state.add_host(pool_id=pool["id"], name_label="h1")
        vm = xo.state.add_vm(name_label="node-1")        # running on the pool master
        ... XOInventory against xo.url ...
        xo.requests.snapshot()                            # {"GET /vms/{id}": 1, ...}

The server only serves and composes; its parts are what a test drives:
``state`` (the world), ``faults`` (injected failures), ``hub`` (event
streams), ``auth`` (tokens and users), ``requests`` (counts per endpoint),
``exchanges`` (every request and answer, when a spec check records them).
The ``/_control`` HTTP API calls the very same methods.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from aiohttp import web
from loguru import logger

from entrypoints.testkits.fake_xo.api import RestAPI
from entrypoints.testkits.fake_xo.control import ControlAPI
from entrypoints.testkits.fake_xo.counter import RequestCounter
from entrypoints.testkits.fake_xo.events import EventHub
from entrypoints.testkits.fake_xo.exchanges import ExchangeLog
from entrypoints.testkits.fake_xo.faults import AuthDB, FaultInjector
from entrypoints.testkits.fake_xo.parts import Parts
from entrypoints.testkits.fake_xo.state import FakeXOState


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
        self.hub = EventHub(ping_interval=ping_interval, compact=compact_frames)
        self.state.listeners.append(self.hub.publish)
        self.faults = FaultInjector(seed=seed)
        self.auth = AuthDB()
        if token:
            self.auth.add_token(token=token)
        for username, password in (users or {}).items():
            self.auth.add_user(username=username, password=password)
        self.requests = RequestCounter()
        self.exchanges = ExchangeLog()
        self.ssl_context = ssl_context
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
        parts = Parts(
            state=self.state,
            hub=self.hub,
            faults=self.faults,
            auth=self.auth,
            requests=self.requests,
            exchanges=self.exchanges,
        )
        rest = RestAPI(parts)
        app = web.Application(middlewares=[rest.middleware])
        rest.register(app)
        ControlAPI(parts, save_state=self.save_state).register(app)
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
        self.faults.release_hangs()
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

    # -- persistence ----------------------------------------------------------------
    def save_state(self, path: str | Path | None = None) -> dict[str, str]:
        target = Path(path) if path else self.state_file
        if target is None:
            raise ValueError("no path given and the server has no --state file")
        self.state.save(target)
        return {"path": str(target)}
