"""The CertificateRequests contract: in memory, and on the real kube-apiserver with
real PEM requests filed by a node identity (see ``domain.ports.CertificateRequests``)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from domain.certificates import KUBELET_SERVING_SIGNER, CSRState
from domain.errors import CertificateRequestGoneError
from tests.contract.csr_drivers import CSRWorld


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def test_a_filed_request_is_read_with_who_asked_and_what_for(csr_world: CSRWorld) -> None:
    name, node = unique("csr"), unique("worker")
    csr = await csr_world.file(
        name,
        node=node,
        dns=(node,),
        ips=("10.0.0.5", "2001:db8::5"),
        emails=("ops@example.com",),
        usages=("digital signature", "key encipherment", "server auth"),
    )
    assert (csr.name, csr.signer_name, csr.state) == (
        name,
        KUBELET_SERVING_SIGNER,
        CSRState.PENDING,
    )
    assert csr.username == f"system:node:{node}" and csr.node_name == node
    assert "system:nodes" in csr.groups
    assert csr.usages == ("digital signature", "key encipherment", "server auth")
    assert (csr.common_name, csr.organizations, csr.other_subject) == (
        f"system:node:{node}",
        ("system:nodes",),
        (),
    )
    assert csr.dns_names == (node,)
    assert csr.ip_addresses == ("10.0.0.5", "2001:db8::5")
    assert csr.other_names == ("email:ops@example.com",)
    assert csr.request_problem == "" and csr.uid


async def test_watch_names_every_request_then_each_new_one(csr_world: CSRWorld) -> None:
    first, second, node = unique("csr"), unique("csr"), unique("worker")
    await csr_world.file(first, node=node, dns=(node,))
    names = csr_world.requests.watch()
    try:
        async with asyncio.timeout(10):
            seen = set()
            while first not in seen:
                seen.add(await anext(names))
            await csr_world.file(second, node=node, dns=(node,))
            while second not in seen:
                seen.add(await anext(names))
    finally:
        await names.aclose()  # type: ignore[attr-defined]


async def test_an_approval_is_written_once(csr_world: CSRWorld) -> None:
    name, node = unique("csr"), unique("worker")
    csr = await csr_world.file(name, node=node, dns=(node,))

    assert await csr_world.requests.approve(request=csr, reason="Test", message="checked")
    approved = await csr_world.requests.get(name=name)
    assert approved is not None and approved.state is CSRState.APPROVED
    assert not await csr_world.requests.approve(request=approved, reason="Test", message="again")


async def test_a_request_another_approver_denied_is_not_approved_over_it(
    csr_world: CSRWorld,
) -> None:
    name, node = unique("csr"), unique("worker")
    pending = await csr_world.file(name, node=node, dns=(node,))
    await csr_world.deny(name)

    assert not await csr_world.requests.approve(request=pending, reason="Test", message="late")
    denied = await csr_world.requests.get(name=name)
    assert denied is not None and denied.state is CSRState.DENIED


async def test_a_deleted_request_cannot_be_approved(csr_world: CSRWorld) -> None:
    name, node = unique("csr"), unique("worker")
    csr = await csr_world.file(name, node=node, dns=(node,))
    await csr_world.remove(name)

    assert await csr_world.requests.get(name=name) is None
    with pytest.raises(CertificateRequestGoneError):
        await csr_world.requests.approve(request=csr, reason="Test", message="too late")


async def test_a_request_replaced_under_its_name_is_not_the_one_approved(
    csr_world: CSRWorld,
) -> None:
    name, node = unique("csr"), unique("worker")
    old = await csr_world.file(name, node=node, dns=(node,))
    await csr_world.remove(name)
    await csr_world.file(name, node=node, dns=(node,))

    with pytest.raises(CertificateRequestGoneError):
        await csr_world.requests.approve(request=old, reason="Test", message="stale")
    current = await csr_world.requests.get(name=name)
    assert current is not None and current.state is CSRState.PENDING
