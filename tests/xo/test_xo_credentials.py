"""Credentials from files, rotated without a restart: the XO adapter over HTTP.

The files are a directory updated as the kubelet updates a mounted Secret
(:class:`tests.secret_volume.SecretVolume`: a new directory, one symlink swap), and
the fake XO accepts or refuses tokens as XO does; every request counted is one the
fake answered, refused ones included.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from loguru import logger
from pydantic import SecretStr

from adapters.config import CloudConfig, load_config_file
from adapters.xenorchestra import XOInventory
from adapters.xenorchestra.credentials import CredentialSource
from domain.errors import AuthenticationError
from entrypoints.testkits.fake_xo import FakeXOServer
from tests.secret_volume import SecretVolume
from tests.xo.support import (
    FAST_RETRY,
    FAST_STREAM,
    PASSWORD,
    TOKEN,
    USERNAME,
    World,
    collecting,
)

NEW_TOKEN = "tok-rotated-5c0e9a7b41d2"
NEW_PASSWORD = "pw-rotated-8f1d3c6a"


def inventory_for(config: CloudConfig, *, check_interval: float = 3600.0) -> XOInventory:
    """The adapter as ``from_config`` builds it, with the stat check as slow as wanted
    (an hour: only a refusal makes it reread) or as fast (0: before every request)."""
    inventory = XOInventory.from_config(config, retry=FAST_RETRY, stream=FAST_STREAM)
    inventory.client._credentials = CredentialSource.from_config(
        config, check_interval=check_interval
    )
    return inventory


def source_of(inventory: XOInventory) -> CredentialSource:
    return inventory.client._credentials


def token_config(xo: FakeXOServer, volume: SecretVolume) -> CloudConfig:
    return CloudConfig(url=xo.url, tokenFile=volume.path("token"))


async def test_the_token_is_read_from_its_file(
    xo: FakeXOServer, world: World, tmp_path: Path
) -> None:
    volume = SecretVolume(tmp_path / "creds", {"token": TOKEN + "\n"})  # a trailing newline
    async with inventory_for(token_config(xo, volume)) as inv:
        snap = await inv.snapshot()
    assert world.pool_a in snap.pools


async def test_a_token_rotated_and_revoked_at_once_costs_one_refused_attempt_not_a_failure(
    xo: FakeXOServer, world: World, tmp_path: Path
) -> None:
    volume = SecretVolume(tmp_path / "creds", {"token": TOKEN})
    async with inventory_for(token_config(xo, volume)) as inv:
        await inv.snapshot()
        xo.auth.add_token(token=NEW_TOKEN)
        volume.update({"token": NEW_TOKEN})
        xo.auth.revoke_token(TOKEN)  # before the adapter had any reason to look
        xo.requests.reset()

        snap = await inv.snapshot()

    assert world.pool_a in snap.pools
    # three lists, each refused once (sent together) then answered: one reread for all
    assert xo.requests.snapshot() == {"GET /vms": 2, "GET /hosts": 2, "GET /pools": 2}
    assert source_of(inv).reads == 2 and source_of(inv).generation == 2


async def test_a_burst_refused_together_rereads_the_file_once(
    xo: FakeXOServer, world: World, tmp_path: Path
) -> None:
    volume = SecretVolume(tmp_path / "creds", {"token": TOKEN})
    vm_ids = [xo.state.add_vm(name_label=f"n{i}", pool_id=world.pool_a)["id"] for i in range(10)]
    async with inventory_for(token_config(xo, volume)) as inv:
        await inv.check()
        xo.auth.add_token(token=NEW_TOKEN)
        volume.update({"token": NEW_TOKEN})
        xo.auth.revoke_token(TOKEN)

        vms = await asyncio.gather(*(inv.get_vm(vm_id=vm_id) for vm_id in vm_ids))

    assert [vm.id for vm in vms] == vm_ids
    assert source_of(inv).reads == 2


async def test_a_changed_file_is_noticed_by_its_stamp_before_any_refusal(
    xo: FakeXOServer, world: World, tmp_path: Path
) -> None:
    volume = SecretVolume(tmp_path / "creds", {"token": TOKEN})
    async with inventory_for(token_config(xo, volume), check_interval=0) as inv:
        await inv.check()
        await inv.check()
        assert source_of(inv).reads == 1  # unchanged stamps: not read again
        xo.auth.add_token(token=NEW_TOKEN)
        volume.update({"token": NEW_TOKEN})
        await inv.check()  # the new token already: the old one may go now
        xo.auth.revoke_token(TOKEN)
        xo.requests.reset()
        await inv.check()

    assert xo.requests.snapshot() == {"GET /vms": 1}  # no refusal on the way
    assert source_of(inv).reads == 2


async def test_a_token_xo_really_refuses_fails_once_and_is_not_retried(
    xo: FakeXOServer, tmp_path: Path
) -> None:
    volume = SecretVolume(tmp_path / "creds", {"token": TOKEN})
    async with inventory_for(token_config(xo, volume)) as inv:
        await inv.check()
        xo.auth.revoke_token(TOKEN)  # and the file still holds it
        xo.requests.reset()
        with pytest.raises(AuthenticationError, match="401"):
            await inv.check()

    assert xo.requests.snapshot() == {"GET /vms": 1}
    assert source_of(inv).reads == 2  # reread once, found the same


async def test_a_rotated_password_file_is_followed(
    xo: FakeXOServer, world: World, tmp_path: Path
) -> None:
    volume = SecretVolume(tmp_path / "creds", {"password": PASSWORD})
    config = CloudConfig(url=xo.url, username=USERNAME, passwordFile=volume.path("password"))
    xo.auth.throttle = 0.2  # XO: 2 s (within the adapter's retry deadline of 60 s)
    async with inventory_for(config) as inv:
        await inv.check()
        xo.auth.add_user(username=USERNAME, password=NEW_PASSWORD)  # the old one is refused
        volume.update({"password": NEW_PASSWORD})
        xo.requests.reset()
        # refused, reread, then XO throttles logins right after a failure: retried
        await inv.check()

    assert source_of(inv).method == "basic" and source_of(inv).generation == 2
    assert xo.requests.snapshot()["GET /vms"] >= 2


async def test_the_go_layout_a_token_inside_the_mounted_config_is_reread(
    xo: FakeXOServer, world: World, tmp_path: Path
) -> None:
    """The Go CCM's Secret (config.yaml with ``token``), mounted as a directory: updating
    the Secret rotates the token without a restart."""
    volume = SecretVolume(tmp_path / "config", {"config.yaml": f"url: {xo.url}\ntoken: {TOKEN}\n"})
    config = load_config_file(volume.path("config.yaml"))
    async with inventory_for(config) as inv:
        await inv.check()
        xo.auth.add_token(token=NEW_TOKEN)
        volume.update({"config.yaml": f"url: {xo.url}\ntoken: {NEW_TOKEN}\nclientTimeout: 5s\n"})
        xo.auth.revoke_token(TOKEN)
        lines: list[str] = []
        sink = logger.add(lambda m: lines.append(str(m)), level="INFO", format="{message}")
        try:
            await inv.check()
        finally:
            logger.remove(sink)

    assert source_of(inv).generation == 2
    assert any("other keys (clientTimeout) at the next restart" in line for line in lines)
    assert not any(NEW_TOKEN in line or TOKEN in line for line in lines)


async def test_a_broken_update_keeps_the_credentials_in_hand_and_says_so_once(
    xo: FakeXOServer, tmp_path: Path
) -> None:
    volume = SecretVolume(tmp_path / "creds", {"token": TOKEN})
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="WARNING", format="{message}")
    try:
        async with inventory_for(token_config(xo, volume), check_interval=0) as inv:
            await inv.check()
            volume.update({"token": "\n"})  # emptied by mistake
            await inv.check()
            await inv.check()
    finally:
        logger.remove(sink)

    warnings = [line for line in lines if "credentials" in line]
    assert len(warnings) == 1
    assert "is empty" in warnings[0] and "keeping the ones read before" in warnings[0]
    assert source_of(inv).generation == 1


async def test_a_file_unreadable_at_the_first_request_is_an_authentication_error(
    xo: FakeXOServer, tmp_path: Path
) -> None:
    volume = SecretVolume(tmp_path / "creds", {"token": TOKEN})
    config = token_config(xo, volume)
    volume.update({"other": "x"})  # the key is gone from the Secret
    volume.path("token").unlink()
    async with inventory_for(config) as inv:
        with pytest.raises(AuthenticationError, match=r"cannot read .*token"):
            await inv.check()


async def test_the_event_stream_reconnects_with_the_rotated_token(
    xo: FakeXOServer, world: World, tmp_path: Path
) -> None:
    volume = SecretVolume(tmp_path / "creds", {"token": TOKEN})
    vm = xo.state.add_vm(name_label="n1", pool_id=world.pool_a)
    inv = inventory_for(token_config(xo, volume))
    async with inv, collecting(inv.changes()) as changes:
        await changes.next()  # RESYNC: connected
        xo.auth.add_token(token=NEW_TOKEN)
        volume.update({"token": NEW_TOKEN})
        xo.auth.revoke_token(TOKEN)
        xo.hub.drop_all()  # XO drops the stream: the reconnection must use the new token
        assert (await changes.next()).kind.value == "resync"
        xo.state.stop_vm(vm["id"])
        change = await changes.next()
    assert change.vm is not None and change.vm.id == vm["id"]


def test_inline_credentials_are_fixed_and_never_stat_anything() -> None:
    config = CloudConfig(url="https://xo.invalid", token=SecretStr(TOKEN))
    source = CredentialSource.from_config(config)
    assert source.generation == 1 and source.reads == 0
    assert TOKEN not in repr(source)
