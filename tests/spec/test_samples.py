"""The fake XO's objects, sample and built, are the objects XO's spec describes.

``samples.py`` is what every fake answer is made of; ``objects.py`` changes it
(power on and off, addresses, migration). Each result is checked against
``Unbrand_XoVm_``, ``Unbrand_XoHost_`` or ``Unbrand_XoPool_``: types, required
fields, and no key the schema does not declare.
"""

from __future__ import annotations

from typing import Any

import pytest

from entrypoints.testkits.fake_xo import FakeXOState, samples
from tests.spec.xo_spec import XOSpec

POOL = "8a3c1e54-7f0b-4c8e-9d21-0b6f3a9e2c11"
HOST = "1c2d3e4f-5a6b-4c7d-8e9f-a0b1c2d3e4f5"
OTHER_HOST = "2d3e4f5a-6b7c-4d8e-9fa0-b1c2d3e4f5a6"
VM = "f07ab729-c0e8-721c-45ec-f11276377030"


@pytest.mark.parametrize(
    ("schema", "sample"),
    [
        pytest.param("Unbrand_XoVm_", samples.VM_HALTED, id="vm-halted"),
        pytest.param("Unbrand_XoVm_", samples.VM_RUNNING, id="vm-running"),
        pytest.param("Unbrand_XoHost_", samples.HOST, id="host"),
        pytest.param("Unbrand_XoPool_", samples.POOL, id="pool"),
    ],
)
def test_a_sample_is_the_spec_s_object(xo_spec: XOSpec, schema: str, sample: Any) -> None:
    assert xo_spec.object_problems(schema, sample) == []


def _world() -> FakeXOState:
    state = FakeXOState()
    state.add_pool(name_label="Pool A", pool_id=POOL)
    state.add_host(pool_id=POOL, name_label="host a1", host_id=HOST)
    state.add_host(pool_id=POOL, name_label="host a2", host_id=OTHER_HOST)
    state.add_vm(name_label="node-1", vm_id=VM, host_id=HOST, tags=["k8s"])
    return state


CHANGES = {
    "running": lambda s: None,
    "halted": lambda s: s.stop_vm(VM),
    "restarted": lambda s: (s.stop_vm(VM), s.start_vm(VM, host_id=OTHER_HOST)),
    "migrated": lambda s: s.migrate_vm(VM, host_id=OTHER_HOST),
    "no-addresses": lambda s: s.set_addresses(VM, addresses={}),
    "ipv6-only": lambda s: s.set_addresses(VM, addresses={"0/ipv6/0": "fd00::5"}),
    "resized": lambda s: s.resize_vm(VM, cpus=8, memory=16 * 1024**3),
    "renamed-and-tagged": lambda s: (s.rename_vm(VM, name_label="n"), s.tag_vm(VM, tags=[])),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_vm_the_fake_builds_is_the_spec_s_vm(xo_spec: XOSpec, change: str) -> None:
    state = _world()
    CHANGES[change](state)

    vm = state.get("VM", VM)

    assert xo_spec.object_problems("Unbrand_XoVm_", vm) == []


def test_the_hosts_and_pool_the_fake_builds_are_the_spec_s(xo_spec: XOSpec) -> None:
    state = _world()

    for host in state.all_visible("host"):
        assert xo_spec.object_problems("Unbrand_XoHost_", host) == []
    assert xo_spec.object_problems("Unbrand_XoPool_", state.get("pool", POOL)) == []


def test_the_sample_world_is_the_spec_s(xo_spec: XOSpec) -> None:
    state = FakeXOState.from_samples()

    for type_, schema in (
        ("VM", "Unbrand_XoVm_"),
        ("host", "Unbrand_XoHost_"),
        ("pool", "Unbrand_XoPool_"),
    ):
        for obj in state.all_visible(type_):
            assert xo_spec.object_problems(schema, obj) == []
