"""Fixtures for the tests against a real kube-apiserver (see real-kube-apiserver.md).

- ``control_plane`` (session): etcd + kube-apiserver on free loopback ports,
  RBAC on; yields a :class:`ControlPlane` (``server``, ``ca_file``,
  ``admin_kubeconfig``, ``workdir``, ``startup_seconds``, ``audit_log`` and
  ``read_audit_log()``); stops both and removes every file at the end.
- ``admin_kubeconfig`` (session): the path of a system:masters kubeconfig.
- ``kube`` (function): an admin ``KubeClient`` (no client-side rate limit)
  for arranging and inspecting; closed after the test.
- ``http_proxy`` (function): an :class:`HttpProxy` to the API server whose rules
  answer, alter or hold chosen requests (``proxied_kubeconfig`` goes through it);
- ``stand_in`` (function): a :class:`StandIn` API server whose answers the test
  scripts (503s, 429s, delays) and which records what it was sent;
- ``service_account`` (function): ``await service_account(name=..., cluster_role=...)``
  creates the ServiceAccount, binds the role, mints a token (TokenRequest)
  and returns a kubeconfig path for that identity;
- ``start_ccm`` (function): ``await start_ccm(xo_url, **options)`` starts a CCM
  of the test's own (admin kubeconfig, a cloud config in the test's tmp dir, a
  Lease of its own) and stops it at the test's end; ``ccm_processes`` lists them.

The binaries are looked up (and built, if absent: minutes) once collection
is over, before any test starts, so a cold build never counts against a
test's timeout; starting the control plane takes a few seconds and happens
in the first integration test's setup.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path

import pytest
from aiohttp import web

from adapters.kubernetes import KubeClient, connect
from entrypoints.testkits.fake_xo import FakeXOControlClient

from .ccm_process import CCMProcess
from .controlplane import ControlPlane, find_binaries, free_port
from .e2e_support import (
    SUBSCRIPTIONS_PER_STREAM,
    TOKEN,
    cloud_config_file,
    lease_flag,
    subscription_count,
    wait_event_stream,
)
from .kube import service_account_kubeconfig
from .proxy import HttpProxy
from .stand_in import StandIn

_binaries: Path | Exception | None = None
_started: list[ControlPlane] = []


def pytest_collection_finish(session: pytest.Session) -> None:
    global _binaries
    if _binaries is None and any(i.get_closest_marker("integration") for i in session.items):
        try:
            _binaries = find_binaries()
        except Exception as err:  # reported by the fixture, test by test
            _binaries = err


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for cp in _started:
        terminalreporter.write_line(
            f"kube control plane: ready in {cp.startup_seconds:.2f}s (etcd + kube-apiserver)"
        )


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    binaries = _binaries if _binaries is not None else find_binaries()
    if isinstance(binaries, Exception):
        pytest.fail(f"control-plane binaries unavailable: {binaries}")
    plane = ControlPlane(binaries)
    try:
        plane.start()
        _started.append(plane)
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def admin_kubeconfig(control_plane: ControlPlane) -> Path:
    return control_plane.admin_kubeconfig


@pytest.fixture
async def kube(admin_kubeconfig: Path) -> AsyncIterator[KubeClient]:
    client = await connect(str(admin_kubeconfig), name="admin")
    try:
        yield client
    finally:
        await client.aclose()


ServiceAccountFactory = Callable[..., Awaitable[Path]]


@pytest.fixture
def service_account(kube: KubeClient, control_plane: ControlPlane) -> ServiceAccountFactory:
    async def make(
        *, name: str, namespace: str = "kube-system", cluster_role: str | None = None
    ) -> Path:
        return await service_account_kubeconfig(
            kube, control_plane, name=name, namespace=namespace, cluster_role=cluster_role
        )

    return make


@pytest.fixture(autouse=True)
async def _no_leftovers() -> AsyncIterator[None]:
    """Every test stops what it started: no pending task, no extra thread."""
    threads_before = set(threading.enumerate())
    yield
    me = asyncio.current_task()
    pending = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
    assert not pending, f"tasks left running: {pending}"
    deadline = time.monotonic() + 3.0
    while True:
        # The loop's default executor ("asyncio_N", e.g. for getaddrinfo) belongs to
        # the loop and is joined when it closes.
        extra = [
            t
            for t in threading.enumerate()
            if t not in threads_before and t.is_alive() and not t.name.startswith("asyncio_")
        ]
        if not extra or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.02)
    assert not extra, f"threads left running: {[t.name for t in extra]}"


@pytest.fixture
async def http_proxy(control_plane: ControlPlane) -> AsyncIterator[HttpProxy]:
    """An HTTP proxy to the API server (admin credentials) whose rules a test sets."""
    assert control_plane.admin_cert is not None
    proxy = HttpProxy(
        control_plane.server, ca_file=control_plane.ca_file, client=control_plane.admin_cert
    )
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()


@pytest.fixture
async def ccm_processes() -> AsyncIterator[list[CCMProcess]]:
    """CCM subprocesses started by the test; all stopped (SIGTERM) at its end."""
    started: list[CCMProcess] = []
    try:
        yield started
    finally:
        for proc in started:
            await proc.stop()
            proc.cleanup()


class StartCCM:
    """Starts a CCM of the test's own against the XO at ``xo_url`` (the ``start_ccm``
    fixture).

    Its cloud config names ``xo_url`` with ``token`` and the ``extra`` lines, unless
    ``config`` gives the file; it runs with the admin kubeconfig unless
    ``kubeconfig`` says otherwise, on Lease ``lease`` (default: one of its own:
    the API server is shared with the session). It is awaited until ready
    (``ready=False``: only started, for a CCM that must fail) and, with
    ``subscribed``, until it leads and has opened its event stream on the fake XO,
    so XO changes reach it from then on. ``ccm_processes`` stops it.
    """

    def __init__(self, processes: list[CCMProcess], admin_kubeconfig: Path, tmp_path: Path) -> None:
        self._processes = processes
        self._admin_kubeconfig = admin_kubeconfig
        self._tmp_path = tmp_path

    async def __call__(
        self,
        xo_url: str = "",
        *,
        config: Path | None = None,
        token: str = TOKEN,
        extra: str = "",
        flags: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        lease: str = "",
        kubeconfig: Path | None = None,
        ready: bool = True,
        subscribed: bool = False,
    ) -> CCMProcess:
        if config is None:
            if not xo_url:
                raise ValueError("start_ccm needs the XO's url or a cloud config")
            config = cloud_config_file(self._tmp_path, xo_url, token=token, extra=extra)
        ccm = CCMProcess(
            kubeconfig=kubeconfig or self._admin_kubeconfig,
            cloud_config=config,
            flags=[lease_flag(lease), *flags],
            env=dict(env or {}),
        )
        if not subscribed:
            return await self._started(ccm, ready=ready)
        async with FakeXOControlClient(xo_url) as control:
            before = await subscription_count(control)
            await self._started(ccm, ready=ready)
            await wait_event_stream(control, at_least=before + SUBSCRIPTIONS_PER_STREAM, within=20)
        return ccm

    async def _started(self, ccm: CCMProcess, *, ready: bool) -> CCMProcess:
        self._processes.append(ccm)
        await ccm.start()
        if ready:
            await ccm.wait_ready()
        return ccm


@pytest.fixture
def start_ccm(ccm_processes: list[CCMProcess], admin_kubeconfig: Path, tmp_path: Path) -> StartCCM:
    """A :class:`StartCCM` whose CCMs ``ccm_processes`` stops."""
    return StartCCM(ccm_processes, admin_kubeconfig, tmp_path)


@pytest.fixture
async def stand_in() -> AsyncIterator[StandIn]:
    server = StandIn()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    server.url = f"http://127.0.0.1:{port}"
    try:
        yield server
    finally:
        await runner.cleanup()
