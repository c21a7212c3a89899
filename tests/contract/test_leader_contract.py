"""The LeaderElector port's contract: the in-memory elector, ``--leader-elect=false``'s
sole leader, and Lease election on the real kube-apiserver.

The leader gate relies on exactly this: ``acquire`` returns once this replica
may lead, ``lost`` stays pending while it leads and returns when another
takes over, and ``release`` lets another lead at once.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.contract.port_drivers import RETRY, Leadership

#: Several renewals of the Lease subject: leading must survive them.
WHILE_LEADING = 3 * RETRY


async def test_acquire_returns_once_the_replica_may_lead(leadership: Leadership) -> None:
    async with asyncio.timeout(5):
        await leadership.elector.acquire()


async def test_lost_stays_pending_while_the_replica_leads(leadership: Leadership) -> None:
    async with asyncio.timeout(5):
        await leadership.elector.acquire()

    lost = asyncio.create_task(leadership.elector.lost())
    await asyncio.sleep(WHILE_LEADING)

    assert not lost.done()
    lost.cancel()
    await asyncio.gather(lost, return_exceptions=True)


async def test_lost_returns_once_another_replica_takes_over(leadership: Leadership) -> None:
    if not leadership.contested:
        pytest.skip("nobody else can ever lead")
    async with asyncio.timeout(5):
        await leadership.elector.acquire()
    lost = asyncio.create_task(leadership.elector.lost())

    await leadership.usurp()

    async with asyncio.timeout(5):
        await lost


async def test_release_lets_another_replica_lead_at_once(leadership: Leadership) -> None:
    if not leadership.contested:
        pytest.skip("nobody else can ever lead")
    async with asyncio.timeout(5):
        await leadership.elector.acquire()

    await leadership.elector.release()

    assert await leadership.successor_leads()


async def test_release_without_leading_is_harmless(leadership: Leadership) -> None:
    await leadership.elector.release()
