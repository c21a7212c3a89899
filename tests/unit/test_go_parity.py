"""Node results identical to the Go CCM's for the same VM (instance type, addresses)."""

from __future__ import annotations

import pytest

from domain.model import AddressType, NodeAddress
from domain.policies.addresses import node_addresses
from domain.policies.instance_type import instance_type

from .factories import vm as make_vm

GIB = 1024**3
MIB = 1024**2


@pytest.mark.parametrize(
    ("cpus", "memory", "label"),
    [
        pytest.param(2, int(2.5 * GIB), "2vCPU-2GB", id="2.5GiB-half-to-even-down"),
        pytest.param(2, int(3.5 * GIB), "2vCPU-4GB", id="3.5GiB-half-to-even-up"),
        pytest.param(4, int(0.5 * GIB), "4vCPU-0GB", id="512MiB"),
        pytest.param(4, int(1.5 * GIB), "4vCPU-2GB", id="1.5GiB"),
        pytest.param(1, 3994 * MIB, "1vCPU-4GB", id="3.9GiB"),
        pytest.param(8, 16 * GIB, "8vCPU-16GB", id="exact"),
        pytest.param(2, int(2.5 * GIB) + 1, "2vCPU-3GB", id="just-above-half"),
    ],
)
def test_instance_type_is_gos_percent_zero_f(cpus: int, memory: int, label: str) -> None:
    """Go's ``%.0f`` rounds the exact value half to even."""
    assert instance_type(cpus=cpus, memory_bytes=memory) == label


def internal(ip: str) -> NodeAddress:
    return NodeAddress(AddressType.INTERNAL_IP, ip)


def external(ip: str) -> NodeAddress:
    return NodeAddress(AddressType.EXTERNAL_IP, ip)


HOST = NodeAddress(AddressType.HOSTNAME, "node-1")


@pytest.mark.parametrize(
    ("provided", "main_ip", "expected"),
    [
        pytest.param((), "10.0.0.5", (external("10.0.0.5"), HOST), id="no-node-ip"),
        pytest.param(
            ("10.0.0.9",),
            "10.0.0.5",
            (internal("10.0.0.9"), external("10.0.0.5"), HOST),
            id="node-ip",
        ),
        pytest.param(
            ("10.0.0.5",),
            "10.0.0.5",
            (internal("10.0.0.5"), external("10.0.0.5"), HOST),
            id="node-ip-is-main-ip",
        ),
        pytest.param(
            ("10.0.0.5", "fd00::5"),
            "10.0.0.5",
            # GetNodeAddressesFromNodeIP: every address equal to each provided IP first.
            (internal("10.0.0.5"), external("10.0.0.5"), internal("fd00::5"), HOST),
            id="dual-stack-node-ip-first-is-main",
        ),
        pytest.param(("10.0.0.9",), "", (internal("10.0.0.9"), HOST), id="no-main-ip"),
    ],
)
def test_addresses_are_the_go_ccms_in_its_order(
    provided: tuple[str, ...], main_ip: str, expected: tuple[NodeAddress, ...]
) -> None:
    vm = make_vm(main_ip_address=main_ip)
    assert node_addresses(vm=vm, node_name="node-1", provided_ips=provided) == expected
