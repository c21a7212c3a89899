"""Secrets never leak: not at TRACE, not in errors, not in reprs."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator

import pytest
from loguru import logger

from adapters.xenorchestra import XOInventory
from domain.errors import AuthenticationError, CCMError
from domain.matching import confirm_absence
from entrypoints.testkits.fake_xo import FakeXOServer
from tests.xo.support import (
    PASSWORD,
    TOKEN,
    USERNAME,
    World,
    collecting,
    make_inventory,
)

VM_ID = "f07ab729-c0e8-721c-45ec-f11276377030"
BASIC = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
SECRETS = (TOKEN, PASSWORD, BASIC)


@pytest.fixture
def trace_log() -> Iterator[list[str]]:
    """Every loguru record at TRACE, with exceptions and their variables."""
    lines: list[str] = []
    sink = logger.add(
        lambda message: lines.append(str(message)),
        level="TRACE",
        format="{level} {name}:{function} {message} {extra} {exception}",
        backtrace=True,
        diagnose=True,
    )
    try:
        yield lines
    finally:
        logger.remove(sink)


async def _exercise(xo: FakeXOServer, world: World, inv: XOInventory, texts: list[str]) -> None:
    """Every code path that talks to XO, successes and failures."""
    xo.state.add_vm(name_label="n1", vm_id=VM_ID, pool_id=world.pool_a)
    await inv.check()
    await inv.snapshot()
    await inv.get_vm(vm_id=VM_ID)
    await inv.find_vms_by_name(name_label="n1")
    await inv.get_host(host_id="00000000-0000-4000-8000-000000000000")
    async with collecting(inv.changes()) as changes:
        await changes.next()
        xo.state.stop_vm(VM_ID)
        await changes.next()
        xo.hub.drop_all()
        await changes.next()
    xo.state.delete_vm(VM_ID)
    failures: list[CCMError] = []
    for fault in ({"fail_next": 5}, {"garbage": "html"}):
        xo.faults.set(**fault)
        try:
            await confirm_absence(inv, vm_id=VM_ID, pools=[world.pool_a])
        except CCMError as err:
            failures.append(err)
        xo.faults.clear()
    try:
        await confirm_absence(inv, vm_id=VM_ID, pools=[world.pool_a])
    except CCMError as err:
        failures.append(err)
    xo.auth.revoke_token(TOKEN)
    xo.auth.users.clear()
    with pytest.raises(AuthenticationError) as refused:
        await inv.check()
    failures.append(refused.value)
    texts.extend(f"{err!s} {err!r}" for err in failures)
    texts.append(repr(inv))


@pytest.mark.parametrize(
    ("token", "username", "password"),
    [
        pytest.param(TOKEN, None, None, id="token"),
        pytest.param(None, USERNAME, PASSWORD, id="password"),
    ],
)
async def test_no_secret_appears_in_trace_logs_errors_or_reprs(
    xo: FakeXOServer,
    world: World,
    trace_log: list[str],
    caplog: pytest.LogCaptureFixture,
    token: str | None,
    username: str | None,
    password: str | None,
) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []

    async with make_inventory(xo, token=token, username=username, password=password) as inv:
        await _exercise(xo, world, inv, texts)

    everything = "\n".join([*trace_log, *texts, caplog.text])
    assert len(trace_log) > 20  # TRACE really was on
    for secret in SECRETS:
        assert secret not in everything
