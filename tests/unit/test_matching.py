"""The one Node -> VM matching rule (domain.matching), table by table."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from domain import labels as L
from domain.errors import (
    AmbiguousVMError,
    PoolUnavailableError,
    ProviderIDError,
    VMDeletedError,
    VMNotFoundError,
)
from domain.matching import (
    MatchedBy,
    VMIndex,
    absence_verdict,
    locate_in_snapshot,
    matched_by,
    pick_by_name,
    placement_pools,
    system_uuid_candidates,
    vm_id_candidates,
)
from domain.model import InventorySnapshot, Node
from domain.policies.system_uuid import swap_little_endian

from .factories import POOL_A, POOL_B, VM_1, VM_2, pool, vm

POOL_C = "0c1d2e3f-4a5b-4c6d-8e7f-901a2b3c4d5e"
SWAPPED = swap_little_endian(VM_1)


def node(**fields: object) -> Node:
    return Node(name="worker-1", **fields)  # type: ignore[arg-type]


def labelled(**values: str) -> MappingProxyType[str, str]:
    return MappingProxyType(values)


@pytest.mark.parametrize(
    ("the_node", "expected"),
    [
        pytest.param(node(provider_id=f"xenorchestra://{POOL_A}/{VM_1}"), (VM_1,), id="ours"),
        pytest.param(
            node(provider_id=f"xenorchestra://{POOL_A}/{VM_1.upper()}", system_uuid=VM_2),
            (VM_1,),
            id="ours-never-the-system-uuid-too",
        ),
        pytest.param(node(provider_id=f"xenorchestra:///{VM_1}"), (VM_1,), id="ours-no-pool"),
        pytest.param(node(provider_id="kind://docker/x", system_uuid=VM_1), (), id="foreign"),
        pytest.param(node(system_uuid=VM_1.upper()), (VM_1, SWAPPED), id="system-uuid-then-twin"),
        pytest.param(node(system_uuid=" not-a-uuid "), (), id="system-uuid-not-a-uuid"),
        pytest.param(node(), (), id="nothing"),
    ],
)
def test_vm_id_candidates(the_node: Node, expected: tuple[str, ...]) -> None:
    assert vm_id_candidates(the_node) == expected


def test_a_malformed_provider_id_of_ours_is_an_error_not_a_miss() -> None:
    with pytest.raises(ProviderIDError):
        vm_id_candidates(node(provider_id="xenorchestra://nope"))


def test_a_palindromic_system_uuid_is_tried_once() -> None:
    same = "00112233-4455-6677-8899-aabbccddeeff"
    twin = swap_little_endian(same)
    assert system_uuid_candidates(same) == (same, twin)
    assert system_uuid_candidates("33221100-5544-7766-8899-aabbccddeeff") == (
        "33221100-5544-7766-8899-aabbccddeeff",
        same,
    )
    palindrome = "00000000-0000-0000-8899-aabbccddeeff"
    assert system_uuid_candidates(palindrome) == (palindrome,)


def test_matched_by_names_the_candidate() -> None:
    plain = node(system_uuid=VM_1)
    assert matched_by(plain, VM_1) is MatchedBy.SYSTEM_UUID
    assert matched_by(plain, SWAPPED) is MatchedBy.SYSTEM_UUID_SWAPPED
    assert matched_by(node(provider_id=f"xenorchestra:///{VM_1}"), VM_1) is MatchedBy.PROVIDER_ID


@pytest.mark.parametrize(
    ("the_node", "expected"),
    [
        pytest.param(node(provider_id=f"xenorchestra://{POOL_A}/{VM_1}"), {POOL_A}, id="pid"),
        pytest.param(
            node(
                provider_id=f"xenorchestra://{POOL_A}/{VM_1}",
                labels=labelled(
                    **{
                        L.REGION: POOL_B,
                        L.REGION_BETA: POOL_B,
                        L.POOL_ID: POOL_B,
                        L.ORIGINAL_POOL_ID: POOL_A,
                    }
                ),
            ),
            {POOL_A, POOL_B},
            id="moved-to-another-pool",
        ),
        pytest.param(
            node(provider_id=f"xenorchestra:///{VM_1}", labels=labelled(**{L.REGION: POOL_A})),
            {POOL_A},
            id="poolless-pid-region-label",
        ),
        pytest.param(
            node(labels=labelled(**{L.REGION_BETA: POOL_C.upper(), L.POOL_ID: POOL_B})),
            {POOL_B, POOL_C},
            id="beta-region-and-pool-label-lower-cased",
        ),
        pytest.param(
            node(labels=labelled(**{L.REGION: "eu-west-1", L.ORIGINAL_POOL_ID: "unknown"})),
            set(),
            id="not-uuid-shaped-ignored",
        ),
        pytest.param(
            node(provider_id=f"vsphere://{POOL_A}/{VM_1}", labels=labelled(**{L.REGION: POOL_B})),
            {POOL_B},
            id="foreign-pid-labels-only",
        ),
        pytest.param(node(provider_id="xenorchestra://nope"), set(), id="malformed-pid"),
    ],
)
def test_placement_pools_are_every_pool_the_node_was_placed_in(
    the_node: Node, expected: set[str]
) -> None:
    assert placement_pools(the_node) == frozenset(expected)


@pytest.mark.parametrize(
    ("known", "kind", "pools"),
    [
        pytest.param({}, VMNotFoundError, None, id="no-pool-not-found"),
        pytest.param({POOL_A: True}, VMDeletedError, (POOL_A,), id="known-deleted"),
        pytest.param(
            {POOL_A: True, POOL_B: True}, VMDeletedError, tuple(sorted((POOL_A, POOL_B))), id="all"
        ),
        pytest.param(
            {POOL_A: True, POOL_B: False}, PoolUnavailableError, (POOL_B,), id="one-unknown"
        ),
        pytest.param({POOL_A: False}, PoolUnavailableError, (POOL_A,), id="unknown"),
    ],
)
def test_absence_is_a_deletion_only_when_every_pool_is_known(
    known: dict[str, bool], kind: type[VMNotFoundError], pools: tuple[str, ...] | None
) -> None:
    verdict = absence_verdict(VM_1, known)
    assert type(verdict) is kind
    assert verdict.vm_id == VM_1
    assert getattr(verdict, "pools", None) == pools


def test_several_vms_named_like_the_node_are_ambiguous() -> None:
    with pytest.raises(AmbiguousVMError) as caught:
        pick_by_name("web", [vm(id=VM_2, name_label="web"), vm(name_label="web")])
    assert caught.value.vm_ids == tuple(sorted((VM_1, VM_2)))
    assert pick_by_name("web", []) is None


SNAPSHOT = InventorySnapshot(vms={VM_1: vm()}, hosts={}, pools={POOL_A: pool()})


@pytest.mark.parametrize(
    ("the_node", "verdict", "unknown"),
    [
        pytest.param(
            node(provider_id=f"xenorchestra://{POOL_A}/{VM_2}"), VMDeletedError, (), id="deleted"
        ),
        pytest.param(
            node(
                provider_id=f"xenorchestra://{POOL_A}/{VM_2}",
                labels=labelled(**{L.REGION: POOL_B}),
            ),
            PoolUnavailableError,
            (POOL_B,),
            id="moved-pool-lost",
        ),
        pytest.param(
            node(provider_id=f"xenorchestra:///{VM_2}"), VMNotFoundError, (), id="no-pool"
        ),
        pytest.param(node(system_uuid=VM_2), type(None), (), id="no-provider-id-no-verdict"),
    ],
)
def test_a_snapshot_judges_an_absence_by_the_same_rule(
    the_node: Node, verdict: type[object], unknown: tuple[str, ...]
) -> None:
    found = locate_in_snapshot(the_node, VMIndex(SNAPSHOT), match_by_name=False)
    assert found.vm is None
    assert type(found.verdict) is verdict
    assert found.unknown_pools == unknown


def test_a_snapshot_finds_the_vm_by_the_little_endian_twin() -> None:
    found = locate_in_snapshot(node(system_uuid=SWAPPED), VMIndex(SNAPSHOT), match_by_name=False)
    assert found.vm is not None and found.vm.id == VM_1
    assert found.matched_by is MatchedBy.SYSTEM_UUID_SWAPPED
    assert found.tried == (SWAPPED, VM_1)
