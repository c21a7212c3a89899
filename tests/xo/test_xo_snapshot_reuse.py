"""An unchanged XO list costs a read and a byte comparison, nothing more (issue 16, at rest).

At rest every periodic pass reads the same three lists from XO; decoding and
parsing 5,000 VMs three times a minute was most of the CCM's CPU. The
inventory keeps each list answer's bytes and what they parsed to, and hands
back the very same values while the bytes stay the same. Over HTTP against
the fake XO: reuse happens, any change is seen at once, a bad answer after a
good one is still refused, and no request pays for an import at run time.
"""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Iterator, Sequence
from types import ModuleType

import pytest

from adapters.xenorchestra import XOInventory
from adapters.xenorchestra import observer as obs
from domain.errors import ProtocolError
from entrypoints.testkits.fake_xo import FakeXOServer
from tests.xo.support import World, make_inventory

VM_A = "0a0a0a0a-0000-4000-8000-00000000000a"
VM_B = "0b0b0b0b-0000-4000-8000-00000000000b"


@pytest.fixture
def two_vms(xo: FakeXOServer, world: World) -> None:
    xo.state.add_vm(name_label="a", vm_id=VM_A, pool_id=world.pool_a, host_id=world.host_a1)
    xo.state.add_vm(name_label="b", vm_id=VM_B, pool_id=world.pool_a, host_id=world.host_a2)


@pytest.mark.usefixtures("two_vms")
async def test_an_unchanged_list_gives_the_very_values_of_the_last_snapshot(
    xo: FakeXOServer, inventory: XOInventory, world: World
) -> None:
    first = await inventory.snapshot()
    second = await inventory.snapshot()

    assert second.vms[VM_A] is first.vms[VM_A]
    assert second.hosts[world.host_a1] is first.hosts[world.host_a1]
    assert second.pools[world.pool_a] is first.pools[world.pool_a]
    assert xo.requests.snapshot() == {"GET /vms": 2, "GET /hosts": 2, "GET /pools": 2}


@pytest.mark.usefixtures("two_vms")
async def test_any_change_in_xo_is_in_the_next_snapshot(
    xo: FakeXOServer, inventory: XOInventory, world: World
) -> None:
    await inventory.snapshot()
    xo.state.rename_vm(VM_A, name_label="a-renamed")
    xo.state.migrate_vm(VM_B, host_id=world.host_a1)
    xo.state.add_host(pool_id=world.pool_a, name_label="host a3")

    after = await inventory.snapshot()

    assert after.vms[VM_A].name_label == "a-renamed"
    assert after.vms[VM_B].container == world.host_a1
    assert len(after.hosts) == 4
    xo.state.delete_vm(VM_B)
    assert set((await inventory.snapshot()).vms) == {VM_A}


@pytest.mark.usefixtures("two_vms")
async def test_a_bad_answer_after_a_good_one_is_still_refused(
    xo: FakeXOServer, inventory: XOInventory
) -> None:
    await inventory.snapshot()
    xo.faults.set(garbage="wrong-types")

    with pytest.raises(ProtocolError, match="GET /vms"):
        await inventory.snapshot()

    xo.faults.clear()
    assert set((await inventory.snapshot()).vms) == {VM_A, VM_B}


class _Attempts:
    """An XO request observer: each attempt's endpoint and error class."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []

    def observe_xo_request(self, *, endpoint: str, seconds: float, error: str | None) -> None:
        self.seen.append((endpoint, error))


@pytest.mark.usefixtures("two_vms")
async def test_a_list_body_that_is_not_json_is_still_its_request_s_protocol_error(
    xo: FakeXOServer,
) -> None:
    """What ``xenorchestra_request_errors_total{error="protocol"}`` counts: the bytes are
    compared with the last answer's, then decoded, inside the measured attempt."""
    attempts = _Attempts()
    async with make_inventory(xo, observer=attempts) as inventory:
        await inventory.snapshot()
        xo.faults.set(garbage="html", endpoint="GET /vms")
        with pytest.raises(ProtocolError, match="GET /vms"):
            await inventory.snapshot()

    failed = [seen for seen in attempts.seen if seen[1] not in (None, "cancelled")]
    assert failed == [("GET /vms", obs.ERROR_PROTOCOL)]  # the other two: cancelled with it


class _ImportRecorder(importlib.abc.MetaPathFinder):
    """Every module lookup that reaches the import system (not ``sys.modules``)."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> None:
        self.asked.append(fullname)
        return None


@pytest.fixture
def imports() -> Iterator[_ImportRecorder]:
    recorder = _ImportRecorder()
    sys.meta_path.insert(0, recorder)
    try:
        yield recorder
    finally:
        sys.meta_path.remove(recorder)


@pytest.mark.usefixtures("two_vms")
async def test_xo_requests_import_nothing_at_run_time(
    inventory: XOInventory, imports: _ImportRecorder
) -> None:
    """httpcore asks ``import sniffio`` on every request; without the package, each
    ask was a failed search of the whole path (40 % of an unchanged snapshot)."""
    await inventory.snapshot()  # the first request may import what it needs once
    imports.asked.clear()

    for _ in range(3):
        await inventory.snapshot()
        await inventory.get_vm(vm_id=VM_A)

    assert imports.asked == []
