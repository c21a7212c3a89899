"""Read-only checks of the XO adapter against a real XO, when one is given.

With ``XO_URL`` and ``XO_TOKEN`` set (``XO_INSECURE=true`` or ``XO_CA_FILE`` for
its TLS), every test here also runs against that XO, so an operator can prove
the CCM against their own XO before deploying; without them, that subject is
skipped saying so. The fake XO is always a subject, which keeps these checks
themselves tested. Nothing here writes to XO: it lists, reads and subscribes.

Every request the adapter sends and every answer it gets is held to XO's
published spec (``tests/spec``), the real XO's answers included.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import SecretStr

from adapters.xenorchestra import XOInventory
from adapters.xenorchestra.auth import Credentials
from adapters.xenorchestra.http import XOHttpClient
from adapters.xenorchestra.tls import tls_verify
from domain.errors import VMDeletedError
from domain.matching import confirm_absence
from domain.model import ChangeKind, InventorySnapshot, PowerState
from entrypoints.testkits.fake_xo import FakeXOServer
from tests.spec.recording import RecordingTransport
from tests.spec.xo_spec import XOSpec
from tests.xo.support import FAST_RETRY, FAST_STREAM, HOST_B1, TOKEN, build_world

#: At most this many objects are read one by one (a large XO stays quick to check).
SAMPLE = 20
NO_REAL_XO = "XO_URL and XO_TOKEN are not set: no real XO to check the adapter against"


@dataclass
class Checked:
    inventory: XOInventory
    transport: RecordingTransport


async def _inventory(url: str, token: str, *, insecure: bool, ca_file: Path | None) -> Checked:
    verify = tls_verify(insecure=insecure, ca_file=ca_file)
    transport = RecordingTransport(verify=verify)
    client = XOHttpClient(
        url=url,
        credentials=Credentials(token=SecretStr(token)),
        verify=verify,
        retry=FAST_RETRY,
        transport=transport,
    )
    return Checked(XOInventory(client, stream=FAST_STREAM), transport)


@pytest.fixture(params=["fake-xo", "real-xo"])
async def xo(request: pytest.FixtureRequest) -> AsyncIterator[XOInventory]:
    spec: XOSpec = request.getfixturevalue("xo_spec")
    if request.param == "real-xo":
        url, token = os.environ.get("XO_URL"), os.environ.get("XO_TOKEN")
        if not (url and token):
            pytest.skip(NO_REAL_XO)
        ca_file = os.environ.get("XO_CA_FILE")
        checked = await _inventory(
            url,
            token,
            insecure=os.environ.get("XO_INSECURE", "").lower() == "true",
            ca_file=Path(ca_file) if ca_file else None,
        )
        async with checked.inventory:
            yield checked.inventory
    else:
        async with FakeXOServer(token=TOKEN, ping_interval=0.2) as fake:
            build_world(fake)
            fake.state.populate(count=3, prefix="node")
            fake.state.add_vm(name_label="off", host_id=HOST_B1, power_state="Halted")
            checked = await _inventory(fake.url, TOKEN, insecure=False, ca_file=None)
            async with checked.inventory:
                yield checked.inventory
    problems = spec.exchange_problems(checked.transport.exchanges)
    assert not problems, f"not as XO {spec.version}'s spec says:\n" + "\n".join(problems)


async def test_the_credentials_are_an_admin_s(xo: XOInventory) -> None:
    await xo.check()


async def test_the_snapshot_is_one_consistent_world(xo: XOInventory) -> None:
    snap = await xo.snapshot()

    assert {h.pool_id for h in snap.hosts.values()} <= set(snap.pools)
    for vm in snap.vms.values():
        assert vm.pool_id in snap.pools, f"VM {vm.id} is in no pool XO lists"
        if vm.power_state is PowerState.RUNNING:
            assert vm.container in snap.hosts, f"running VM {vm.id} is on no host XO lists"


def _sample(snap: InventorySnapshot) -> list[str]:
    return sorted(snap.vms)[:SAMPLE]


async def test_a_vm_reads_alone_as_in_the_snapshot(xo: XOInventory) -> None:
    snap = await xo.snapshot()

    for vm_id in _sample(snap):
        vm = await xo.get_vm(vm_id=vm_id)
        assert vm is not None and (vm.id, vm.pool_id) == (vm_id, snap.vms[vm_id].pool_id)


async def test_hosts_and_pools_read_alone_as_in_the_snapshot(xo: XOInventory) -> None:
    snap = await xo.snapshot()
    cold = XOInventory(xo.client)  # the same (recording) client, empty caches: every read asks XO

    for host_id in sorted(snap.hosts)[:SAMPLE]:
        assert await cold.get_host(host_id=host_id) == snap.hosts[host_id]
    for pool_id in sorted(snap.pools)[:SAMPLE]:
        assert await cold.get_pool(pool_id=pool_id) == snap.pools[pool_id]


async def test_an_unknown_vm_in_a_pool_xo_knows_is_deleted(xo: XOInventory) -> None:
    snap = await xo.snapshot()
    if not snap.pools:
        pytest.skip("this XO has no pool")

    verdict = await confirm_absence(xo, vm_id=str(uuid.uuid4()), pools=[sorted(snap.pools)[0]])
    assert isinstance(verdict, VMDeletedError)


async def test_a_vm_is_found_by_its_name(xo: XOInventory) -> None:
    snap = await xo.snapshot()
    named = [vm for vm in snap.vms.values() if vm.name_label]
    if not named:
        pytest.skip("this XO has no named VM")
    vm = min(named, key=lambda v: v.id)

    found = await xo.find_vms_by_name(name_label=vm.name_label)

    assert vm.id in {v.id for v in found}
    assert {v.name_label for v in found} == {vm.name_label}


async def test_the_change_stream_starts_with_a_resync(xo: XOInventory) -> None:
    async with aclosing(xo.changes()) as changes, asyncio.timeout(30):
        first = await anext(changes)

    assert first.kind is ChangeKind.RESYNC


async def test_the_token_is_an_admins(xo: XOInventory) -> None:
    # Deletions need it (``admin_view``): the CCM's token must be an XO admin's.
    assert await xo.admin_view() is True
