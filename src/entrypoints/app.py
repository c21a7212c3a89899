"""The CCM process: connect, check XO, serve health, lead, run the controllers.

Exit codes: 0 after a clean stop (SIGTERM/SIGINT), 1 when the startup check
fails, the kubeconfig is unusable, or leadership is lost (the Deployment
restarts the pod, as every Kubernetes controller manager expects).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from typing import Any

from loguru import logger

from adapters.config import CloudConfig
from adapters.kubernetes import KubeConfigError, connect, record_client_check_failure
from application.manager import LeadershipLost
from domain.errors import InventoryError
from entrypoints.container import Container, enabled_runnables
from entrypoints.flags import Settings
from entrypoints.runtime import staggered
from entrypoints.serving import SecureServingError, secure_port

#: Readiness asks XO at most this often (probes come every few seconds).
XO_READINESS_TTL = 10.0
#: How long the startup check and readiness retry XO before calling it down.
STARTUP_CHECK_DEADLINE = 5.0


class Readiness:
    """Ready once the node cache is synced and XO answered recently."""

    def __init__(self, nodes: Any, inventory: Any) -> None:
        self._nodes = nodes
        self._inventory = inventory
        self._checked_at = -XO_READINESS_TTL
        self._xo_ok: tuple[bool, str] = (False, "XO not checked yet")

    async def __call__(self) -> tuple[bool, str]:
        if not self._nodes.synced:
            return False, "node cache not synced yet"
        now = time.monotonic()
        if now - self._checked_at >= XO_READINESS_TTL:
            self._checked_at = now
            try:
                await self._inventory.check(deadline=STARTUP_CHECK_DEADLINE)
                self._xo_ok = (True, "ok")
            except InventoryError as err:
                self._xo_ok = (False, f"Xen Orchestra does not answer: {err}")
        return self._xo_ok


def _fail(message: str) -> int:
    print(f"xenorchestra-cloud-controller-manager: error: {message}", file=sys.stderr)
    return 1


async def run_ccm(settings: Settings, config: CloudConfig) -> int:
    """Run until stopped; see the module docstring for exit codes."""
    try:
        api = await connect(
            settings.kubeconfig,
            qps=settings.kube_api_qps,
            burst=settings.kube_api_burst,
            master=settings.master,
        )
    except KubeConfigError as err:
        return _fail(f"kubeconfig: {err}")
    container = Container(settings=settings, cloud_config=config)
    container.kube_api.override(api)
    inventory = container.inventory()
    try:
        return await _run(container, settings, api, inventory)
    finally:
        with contextlib.suppress(Exception):
            await inventory.aclose()
        if settings.leader_elect:
            # Built lazily and cheaply (no I/O) if startup failed before the gate.
            with contextlib.suppress(Exception):
                await container.leader_elector().stop()
            await container.leader_api().aclose()
        await api.aclose()


async def _run(container: Container, settings: Settings, api: Any, inventory: Any) -> int:
    try:
        # Like the reference, check once (with a short retry window), then fail fast:
        # a crash-looping pod with a FailedToCheckClient event says more than a hang.
        await inventory.check(deadline=STARTUP_CHECK_DEADLINE)
    except InventoryError as err:
        logger.error("Xen Orchestra check failed: {}", err)
        await record_client_check_failure(api, error=str(err))
        return _fail(f"cannot use Xen Orchestra at {container.cloud_config().url}: {err}")
    logger.info("Xen Orchestra answers at {}", container.cloud_config().url)

    nodes = container.nodes()
    try:
        health = await secure_port(
            settings, metrics=container.metrics(), readiness=Readiness(nodes, inventory)
        )
    except SecureServingError as err:
        return _fail(f"secure port: {err}")
    try:
        await health.start()
    except OSError as err:
        await health.stop()
        return _fail(f"secure port {settings.bind_address}:{settings.secure_port}: {err}")
    await nodes.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await nodes.wait_synced()
        logger.info("node cache synced; controllers: {}", ", ".join(settings.controllers))
        gate = container.gate()
        runnables = staggered(enabled_runnables(container), settings.controller_start_interval)
        running = asyncio.create_task(gate.run(runnables), name="gate")
        stopping = asyncio.create_task(stop.wait(), name="stop-signal")
        done, _ = await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if running in done:
            stopping.cancel()
            running.result()  # raises LeadershipLost or a controller's crash
            return 0
        logger.info("stopping on signal")
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        return 0
    except LeadershipLost:
        logger.error("leader election lost: exiting so the pod restarts")
        return 1
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await health.stop()
        await nodes.stop()
