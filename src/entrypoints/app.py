"""The CCM process: connect, check XO, serve health, lead, run the controllers.

Everything is built by the container (:mod:`entrypoints.container`); this
module only orders the phases and maps their outcome to an exit code:

1. ``Connection`` resources: the Kubernetes client (a bad kubeconfig
   exits 1 here) and the XO adapter;
2. the startup check: XO must answer within seconds, else a
   ``FailedToCheckClient`` Warning event and exit 1, like the reference;
3. ``Service`` resources: the Node cache starts, the secure port serves
   (a port that cannot be set up or bound exits 1);
4. once the cache is synced, the leader gate runs the enabled controllers
   (``--controller-start-interval`` apart);
5. whatever happened, ``shutdown`` closes what was opened,
   dependents first.

Exit codes: 0 after a clean stop (SIGTERM/SIGINT), 1 when the startup check
fails, the kubeconfig or the secure port is unusable, or leadership is lost
(the Deployment restarts the pod, as every Kubernetes controller manager expects).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from asyncio import sslproto
from collections.abc import Iterator

from dependency_injector import providers
from loguru import logger

from adapters.config import CloudConfig
from adapters.kubernetes import KubeClient, KubeConfigError, record_client_check_failure
from application.manager import LeadershipLost
from domain.errors import InventoryError
from entrypoints.console import fail
from entrypoints.container import Connection, Container, Service, provide, shutdown, start
from entrypoints.flags.settings import Settings
from entrypoints.readiness import STARTUP_CHECK_DEADLINE
from entrypoints.serving import SecureServingError

#: Container allocations (net) between two young-generation collections.
YOUNG_COLLECTION_THRESHOLD = 10_000


#: What each TLS connection of the standard event loop (below ``--kube-api-qps`` 100)
#: reads from its socket at once: four TLS records. The standard loop's own, 256 KiB,
#: is a buffer each connection fills with zeros and keeps while it lives (uvloop's,
#: as large, is left unfilled: only what reads reach is resident): 0.9-1.0 MiB of
#: the CCM's resident memory at default flags (peak at 200 nodes 68.3 -> 67.3-67.4
#: MiB, two runs each).
TLS_READ_SIZE = 64 * 1024


@contextlib.contextmanager
def tls_read_size(size: int) -> Iterator[None]:
    """The standard loop's TLS connections opened meanwhile read ``size`` bytes at
    most at once (a class setting of asyncio's: restored after, for an embedder)."""
    before = sslproto.SSLProtocol.max_size
    sslproto.SSLProtocol.max_size = size
    try:
        yield
    finally:
        sslproto.SSLProtocol.max_size = before


async def run_ccm(settings: Settings, config: CloudConfig) -> int:
    """Run until stopped; see the module docstring for exit codes."""
    container = Container(settings=settings, cloud_config=config)
    with tls_read_size(TLS_READ_SIZE):
        try:
            return await _run(container, settings)
        finally:
            await shutdown(container)


async def _run(container: Container, settings: Settings) -> int:
    try:
        await start(container, Connection)
    except KubeConfigError as err:
        return fail(f"kubeconfig: {err}")
    inventory = await provide(container.inventory)
    url = container.cloud_config().url
    try:
        # Like the reference, check once (with a short retry window), then fail fast:
        # a crash-looping pod with a FailedToCheckClient event says more than a hang.
        await inventory.check(deadline=STARTUP_CHECK_DEADLINE)
    except InventoryError as err:
        reason = str(err)  # the log, stderr and the Event each mask secrets themselves
        logger.error("Xen Orchestra check failed: {}", reason)
        # the events client: the controllers' one writes only while this replica leads
        await record_client_check_failure(await provide(container.event_client), error=reason)
        return fail(f"cannot use Xen Orchestra at {url}: {reason}")
    logger.info("Xen Orchestra answers at {}", url)
    await _warm_up(container, settings)

    try:
        await start(container, Service)
    except SecureServingError as err:
        return fail(f"secure port: {err}")
    logger.info("health and metrics on {}", (await provide(container.health)).listening)
    nodes = await provide(container.nodes)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    thresholds = gc.get_threshold()
    try:
        await nodes.wait_synced()
        logger.info("node cache synced; controllers: {}", ", ".join(settings.controllers))
        # What is alive now (modules, clients, the Node cache) lives as long as the
        # process: out of the collector's way, or every full collection walks it
        # again (at rest with 5,000 nodes, most of a periodic pass's CPU).
        gc.collect()
        gc.freeze()
        # A young collection every 700 new containers (the default) ran about once
        # every seven nodes at QPS 500 (a Node's JSON is dozens of dicts): 290 for 2,000
        # joins, 0.09-0.10 s of CPU. Every 10,000 (the other two as default): 20, 0.05 s;
        # the peak RSS alike (cycles are rare here; the rest is freed by refcounting).
        gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *thresholds[1:])
        gate = await provide(container.gate)
        runnables = await provide(container.runnables)
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
        gc.unfreeze()
        gc.set_threshold(*thresholds)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


async def _warm_up(container: Container, settings: Settings) -> None:
    """Pay at start, before the process reports ready, what the first nodes would pay:
    the Kubernetes clients' TLS contexts, credentials and connections (one per
    cloud-node worker, which a burst of joins keeps busy, and the events client's
    one: their TLS handshakes, docs/configuration.md), and one snapshot of XO, which
    fills the host and pool caches and opens XO's connections. All at once: an API
    server that never answers costs the start one connect timeout, not one per
    client. A failure is only logged: what it would have prepared is prepared at
    first use, as before."""

    async def warm_client(client: providers.Provider[KubeClient], connections: int) -> None:
        try:
            await (await provide(client)).warm(connections=connections)
        except Exception as err:  # a warm-up never stops the start
            logger.debug("warm-up of a Kubernetes client failed: {}", err)

    async def warm_xo() -> None:
        try:
            await (await provide(container.status_snapshots)).take()
        except InventoryError as err:
            logger.debug("warm-up snapshot of XO failed: {}", err)

    await asyncio.gather(
        warm_client(container.kube_client, settings.concurrent_node_syncs),
        warm_client(container.event_client, 1),
        warm_xo(),
    )
