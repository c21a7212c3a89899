"""providerID, uuid swap, label values, instance types."""

from __future__ import annotations

import pytest

from domain.errors import ProviderIDError
from domain.policies.instance_type import instance_type
from domain.policies.label_values import sanitize_label_value
from domain.policies.system_uuid import swap_little_endian
from domain.providerid import ProviderID, is_ours

from .factories import GIB, POOL_A, VM_1


@pytest.mark.parametrize(
    ("raw", "pool", "vm"),
    [
        pytest.param(f"xenorchestra://{POOL_A}/{VM_1}", POOL_A, VM_1, id="pool-and-vm"),
        pytest.param(f"xenorchestra:///{VM_1}", "", VM_1, id="empty-pool-looks-up-by-vm-alone"),
        pytest.param(
            f"xenorchestra://{POOL_A.upper()}/{VM_1.upper()}",
            POOL_A,
            VM_1,
            id="uppercase-uuids-lowered",
        ),
    ],
)
def test_providerid_parses(raw: str, pool: str, vm: str) -> None:
    pid = ProviderID.parse(raw)
    assert (pid.pool_id, pid.vm_id) == (pool, vm)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("aws:///us-east-1a/i-123", id="foreign-scheme"),
        pytest.param("", id="empty"),
        pytest.param("xenorchestra://", id="nothing-after-scheme"),
        pytest.param(f"xenorchestra://{POOL_A}/", id="no-vm"),
        pytest.param(f"xenorchestra://{POOL_A}/not-a-uuid", id="vm-not-uuid"),
        pytest.param(f"xenorchestra://pool/{VM_1}", id="pool-not-uuid"),
        pytest.param(f"xenorchestra://{POOL_A}/{VM_1}/extra", id="too-many-parts"),
        pytest.param(f"xenorchestra:/{POOL_A}/{VM_1}", id="one-slash"),
    ],
)
def test_providerid_malformed_is_a_typed_error(raw: str) -> None:
    with pytest.raises(ProviderIDError):
        ProviderID.parse(raw)


@pytest.mark.parametrize(
    ("raw", "ours"),
    [
        pytest.param(f"xenorchestra://{POOL_A}/{VM_1}", True, id="ours"),
        pytest.param("xenorchestra://garbage", True, id="ours-but-malformed"),
        pytest.param("proxmox://cluster/100", False, id="foreign"),
        pytest.param("", False, id="empty"),
    ],
)
def test_providerid_ownership(raw: str, ours: bool) -> None:
    assert is_ours(raw) is ours


def test_providerid_format_round_trips() -> None:
    raw = f"xenorchestra://{POOL_A}/{VM_1}"
    assert ProviderID.parse(raw).format() == raw
    assert str(ProviderID(pool_id="", vm_id=VM_1)) == f"xenorchestra:///{VM_1}"


@pytest.mark.parametrize(
    ("uuid", "swapped"),
    [
        pytest.param(
            "aabbccdd-eeff-1122-3344-556677889900",
            "ddccbbaa-ffee-2211-3344-556677889900",
            id="first-three-fields-swapped",
        ),
        pytest.param(
            "AABBCCDD-EEFF-1122-3344-556677889900",
            "ddccbbaa-ffee-2211-3344-556677889900",
            id="uppercase-lowered",
        ),
        pytest.param("not-a-uuid", "not-a-uuid", id="garbage-unchanged"),
    ],
)
def test_little_endian_swap(uuid: str, swapped: str) -> None:
    assert swap_little_endian(uuid) == swapped


def test_little_endian_swap_is_its_own_inverse() -> None:
    assert swap_little_endian(swap_little_endian(VM_1)) == VM_1


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        pytest.param("worker-1", "worker-1", id="already-valid"),
        pytest.param("My VM (prod)", "My-VM--prod", id="spaces-and-parens"),
        pytest.param("nœud-été", "n-ud--t", id="unicode-letters-replaced-then-trimmed"),
        pytest.param("--._x_.--", "x", id="leading-and-trailing-junk"),
        pytest.param("a" * 70, "a" * 63, id="over-63-characters"),
        pytest.param("a" * 62 + "-b", "a" * 62, id="cut-never-ends-on-dash"),
        pytest.param("", "", id="empty"),
        pytest.param("!!!", "", id="only-junk"),
        pytest.param("a_b.c-d", "a_b.c-d", id="inner-punctuation-kept"),
    ],
)
def test_sanitize_label_value(raw: str, clean: str) -> None:
    assert sanitize_label_value(raw) == clean
    assert len(clean) <= 63


@pytest.mark.parametrize(
    ("cpus", "memory", "expected"),
    [
        pytest.param(2, 4 * GIB, "2vCPU-4GB", id="exact"),
        pytest.param(4, int(3.9 * GIB), "4vCPU-4GB", id="rounds-up"),
        pytest.param(1, int(2.4 * GIB), "1vCPU-2GB", id="rounds-down"),
        pytest.param(1, int(1.5 * GIB), "1vCPU-2GB", id="half-rounds-up"),
        pytest.param(16, 64 * GIB, "16vCPU-64GB", id="large"),
        pytest.param(1, 256 * 1024**2, "1vCPU-0GB", id="under-half-a-gib"),
    ],
)
def test_instance_type(cpus: int, memory: int, expected: str) -> None:
    assert instance_type(cpus=cpus, memory_bytes=memory) == expected
