"""The health and metrics endpoints, on ``--bind-address:--secure-port``.

What Kubernetes probes and Prometheus scrape:

- ``/healthz``, ``/livez``: 200 while the process (its event loop) answers;
  a wedged loop fails the liveness probe by not answering at all;
- ``/readyz``: 200 only when the readiness check passes (node cache synced
  and XO reachable); otherwise 503 with the reason in the body, so
  ``kubectl describe pod`` says *why* the pod is not ready;
- ``/metrics``: the Prometheus text format (or OpenMetrics when asked).

Served by aiohttp inside the CCM's own event loop (no extra thread), over
TLS when a certificate and key (or a ready TLS context) are given, plain HTTP
otherwise. The CCM serves it over HTTPS behind delegated authentication and
authorization (``secure_serving``, ``delegated_auth``): ``middlewares`` run
before every handler, unknown paths included.

The listening socket is bound as Go binds it (``listener``: ``0.0.0.0`` and ``::``
reach IPv4 and IPv6 clients), and connections are accepted within Kubernetes'
limits (``connections``: handshake, header, idle and request timeouts, a cap on
open connections), so slow or idle clients cannot starve the probes.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from aiohttp import web
from loguru import logger

from adapters.observability import listener
from adapters.observability.connection_limits import Limits
from adapters.observability.connections import ConnectionGuard
from adapters.observability.delegated_auth import status_body
from adapters.observability.metrics import PrometheusMetrics

#: Returns True when ready, or (ready, reason) to say why not.
ReadinessCheck = Callable[[], Awaitable[bool | tuple[bool, str]]]


class HealthServer:
    """``await start()`` inside a running loop, ``await stop()`` to close it.

    ``port=0`` binds a free port (``port`` tells which after ``start``). The
    TLS files are read at construction, so a wrong path fails at startup,
    before anything is served.
    """

    def __init__(
        self,
        *,
        metrics: PrometheusMetrics | None = None,
        readiness: ReadinessCheck | None = None,
        bind_address: str = "0.0.0.0",
        port: int = 10258,
        cert_file: str | Path | None = None,
        key_file: str | Path | None = None,
        readiness_timeout: float = 5.0,
        ssl_context: ssl.SSLContext | None = None,
        middlewares: Sequence[Callable[..., Awaitable[web.StreamResponse]]] = (),
        reuse_port: bool = False,
        limits: Limits | None = None,
    ) -> None:
        if (cert_file is None) != (key_file is None):
            raise ValueError("TLS needs both a certificate file and a key file")
        self._metrics = metrics
        self._readiness = readiness
        self._readiness_timeout = readiness_timeout
        self.bind_address = bind_address
        self._requested_port = port
        self.port = port
        self._ssl: ssl.SSLContext | None = ssl_context
        self._middlewares = tuple(middlewares)
        self._reuse_port = reuse_port
        self.limits = limits or Limits()
        #: What the socket is bound to, as Go prints it (``[::]:10258 (...)``), once started.
        self.listening = ""
        self._guard: ConnectionGuard | None = None
        if cert_file is not None and key_file is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.load_cert_chain(str(cert_file), str(key_file))
            self._ssl = context
        self._runner: web.AppRunner | None = None

    @property
    def tls(self) -> bool:
        return self._ssl is not None

    @property
    def url(self) -> str:
        host = self.bind_address
        if host in ("0.0.0.0", "", "::"):
            host = "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    @property
    def guard(self) -> ConnectionGuard | None:
        """Who accepts the connections (None until started)."""
        return self._guard

    def _app(self) -> web.Application:
        app = web.Application(middlewares=(self._guard_requests, *self._middlewares))
        app.router.add_get("/healthz", self._alive)
        app.router.add_get("/livez", self._alive)
        app.router.add_get("/readyz", self._ready)
        app.router.add_get("/metrics", self._scrape)
        return app

    async def start(self) -> None:
        if self._runner is not None:
            return
        sock = listener.bind(self.bind_address, self._requested_port, reuse_port=self._reuse_port)
        runner = web.AppRunner(
            self._app(),
            access_log=None,
            handle_signals=False,
            keepalive_timeout=self.limits.idle_timeout,
        )
        try:
            await runner.setup()
        except BaseException:
            sock.close()
            raise
        assert runner.server is not None
        guard = ConnectionGuard(
            sock, handler_factory=runner.server, ssl_context=self._ssl, limits=self.limits
        )
        guard.start()
        self._runner, self._guard = runner, guard
        self.port = int(sock.getsockname()[1])
        self.listening = listener.describe(sock)
        logger.info(
            "serving /healthz /livez /readyz /metrics on {}://{}",
            "https" if self.tls else "http",
            self.listening,
        )

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        guard = self._guard
        if guard is not None:
            await guard.stop_accepting()
        if runner is not None:
            await runner.cleanup()  # answers what is in progress, closes the rest
        if guard is not None:
            await guard.close()
        self._guard = None

    async def __aenter__(self) -> HealthServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- the outermost middleware ---------------------------------------------
    @web.middleware
    async def _guard_requests(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        """The request timeout, and the connection's state for the guard: busy while
        the request is handled and its answer written, idle again afterwards."""
        guard = self._guard
        if guard is None:
            return await handler(request)
        connection = guard.request_started(request.transport)
        response: web.StreamResponse | None = None
        try:
            async with asyncio.timeout(self.limits.request_timeout):
                response = await handler(request)
                await response.prepare(request)
                await response.write_eof()
        except TimeoutError:
            if response is not None and response.prepared:
                guard.answer_unread(connection)  # the client does not read it
                return response
            response = _timeout_answer()
        except BaseException:
            guard.request_ended(connection)  # aiohttp answers the HTTPException
            raise
        guard.request_ended(connection)
        return response

    # -- handlers -----------------------------------------------------------
    async def _alive(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _ready(self, request: web.Request) -> web.Response:
        ready, reason = await self.check_ready()
        if ready:
            return web.Response(text="ok")
        return web.Response(status=503, text=f"not ready: {reason}\n")

    async def check_ready(self) -> tuple[bool, str]:
        """Run the readiness check: (ready, reason); a failing or slow check is "not ready"."""
        if self._readiness is None:
            return True, ""
        try:
            async with asyncio.timeout(self._readiness_timeout):
                result = await self._readiness()
        except TimeoutError:
            return False, f"readiness check did not answer within {self._readiness_timeout:g}s"
        except Exception as err:
            return False, f"readiness check failed: {err}"
        if isinstance(result, tuple):
            ready, reason = result
            return bool(ready), reason or ("" if ready else "not ready")
        return bool(result), "" if result else "not ready"

    async def _scrape(self, request: web.Request) -> web.Response:
        if self._metrics is None:
            raise web.HTTPNotFound(text="metrics disabled\n")
        body, content_type = self._metrics.render(request.headers.get("Accept", ""))
        return web.Response(body=body, headers={"Content-Type": content_type})


def _timeout_answer() -> web.Response:
    """The API server's answer to a request that ran out of time."""
    message = "Timeout: request did not complete within requested timeout"
    return web.Response(
        status=504,
        body=status_body(504, "Timeout", message),
        content_type="application/json",
        headers={"Cache-Control": "no-cache, private"},
    )
