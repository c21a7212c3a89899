"""The one rule tying a Node to its VM, and the pools that must answer before a 404 counts.

Every deletion rests on these functions, so they exist once: registration,
lifecycle, label and address sync, the change router and ``doctor`` call
them; none restates them.

- :func:`vm_id_candidates`: which VM ids may be the node's, in the order to
  try them: our providerID's VM id alone; without a providerID, the
  ``systemUUID`` and then its little-endian twin (UEFI guests report the
  first three fields byte-swapped). Never both kinds for one node.
- :func:`placement_pools`: every pool the node was ever placed in, as far
  as the Node object tells: the providerID's pool, the region label (GA and
  beta) and the XO pool labels, current and original.
- :func:`absence_verdict`: what a VM's 404 means, given which of those
  pools XO still knows: deleted only if it knows them all;
  :func:`confirm_absence` asks XO for those pools (and the VM again) through
  the port, so the verdict is the domain's, never an adapter's.
- :func:`locate_vm` (through the Inventory port, for registration) and
  :func:`locate_in_snapshot` (in one snapshot, for ``doctor``): the VM
  itself, by those candidates and then, when enabled, by name.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from domain import labels
from domain.errors import (
    AmbiguousVMError,
    InvalidNodeError,
    PoolUnavailableError,
    ProviderIDError,
    VMDeletedError,
    VMNotFoundError,
    VMWhereaboutsUnknownError,
)
from domain.model import VM, Host, InventorySnapshot, Node, Pool, PoolPresence
from domain.policies.system_uuid import swap_little_endian
from domain.policies.xo_servers import lost_servers
from domain.ports import Inventory
from domain.providerid import ProviderID, is_ours, is_uuid

#: Labels naming a pool the node was placed in (the CCM writes them; the region
#: label may also come from another tool, hence the uuid-shape check).
POOL_LABELS = (labels.REGION, labels.REGION_BETA, labels.POOL_ID, labels.ORIGINAL_POOL_ID)


class MatchedBy(StrEnum):
    """How a node's VM was found."""

    PROVIDER_ID = "providerID"
    SYSTEM_UUID = "systemUUID"
    SYSTEM_UUID_SWAPPED = "little-endian systemUUID"
    NAME_LABEL = "name_label"


@lru_cache(maxsize=4096)  # asked at every event of every node: swap each uuid once
def system_uuid_candidates(system_uuid: str) -> tuple[str, ...]:
    """The uuid kubelet reports and its little-endian twin (empty unless uuid-shaped)."""
    uuid = system_uuid.strip().lower()
    if not is_uuid(uuid):
        return ()
    return tuple(dict.fromkeys((uuid, swap_little_endian(uuid))))


def vm_id_candidates(node: Node) -> tuple[str, ...]:
    """The VM ids that may be this node's, in the order to try them.

    Our providerID: its VM id alone (raises ProviderIDError when malformed).
    A foreign providerID: none (the CCM leaves such nodes alone). No
    providerID: ``systemUUID``, then its little-endian twin.
    """
    if node.provider_id:
        if not is_ours(node.provider_id):
            return ()
        return (ProviderID.parse(node.provider_id).vm_id,)
    return system_uuid_candidates(node.system_uuid)


def matched_by(node: Node, candidate: str) -> MatchedBy:
    """Which of :func:`vm_id_candidates` ``candidate`` is (it must be one of them)."""
    if node.provider_id:
        return MatchedBy.PROVIDER_ID
    first = node.system_uuid.strip().lower()
    return MatchedBy.SYSTEM_UUID if candidate == first else MatchedBy.SYSTEM_UUID_SWAPPED


def placement_pools(node: Node) -> frozenset[str]:
    """Every pool the node was ever placed in: these must all be known to XO
    before the VM's absence counts as a deletion.

    The providerID keeps the registration pool while label sync moves the
    region and pool labels along with the VM, and kubelet's ``--provider-id``
    may name a pool the VM never was in: a rule on any one of them alone
    lets a lost pool read as a deleted VM. Uuid-shaped values only, lower-cased.
    """
    pools: set[str] = set()
    if is_ours(node.provider_id):
        try:
            pool_id = ProviderID.parse(node.provider_id).pool_id
        except ProviderIDError:
            pool_id = ""
        if pool_id:
            pools.add(pool_id)
    for key in POOL_LABELS:
        value = node.labels.get(key, "").strip().lower()
        if is_uuid(value):
            pools.add(value)
    return frozenset(pools)


def absence_verdict(
    vm_id: str, known: Mapping[str, bool], *, without_vms: Collection[str] = ()
) -> VMNotFoundError:
    """What the absence of VM ``vm_id`` means, given XO's answer for each placement pool.

    No pool to check: VMNotFoundError (nothing proves a deletion). One pool
    unknown: PoolUnavailableError (XO lost it: an outage; or, among ``without_vms``,
    XO holds it without listing its VMs). Every pool known: VMDeletedError, the only
    error that may lead to deleting a Node.
    """
    if not known:
        return VMNotFoundError(vm_id)
    unknown = sorted(pool for pool, is_known in known.items() if not is_known)
    if unknown:
        return PoolUnavailableError(
            vm_id, unknown, without_vms=[p for p in unknown if p in without_vms]
        )
    return VMDeletedError(vm_id, sorted(known))


async def confirm_absence(
    inventory: Inventory, *, vm_id: str, pools: Collection[str]
) -> VM | VMNotFoundError:
    """What it means that XO answered 404 for VM ``vm_id``, whose node was placed in
    ``pools``: the error :func:`absence_verdict` names, each pool asked of XO now,
    with every pool XO was seen to place the VM in (it may have moved since the
    node's pools were written), when the node names any.

    A VMDeletedError holds only when the VM is still absent once the pools answered:
    a pool XO reconnected meanwhile brings its VMs back, and then the VM is returned.
    """
    named = {p.strip().lower() for p in pools if p.strip()}
    if named:  # beside the node's own pools only: a node naming none is never deleted
        # A VM moved to a pool XO then lost is absent like a deleted one, whatever pool
        # its node still names; one this process never saw may have moved to any.
        seen = inventory.pools_seen(vm_id=vm_id)
        lost = lost_servers(await inventory.servers() or ()) if not seen else []
        if lost:
            return VMWhereaboutsUnknownError(vm_id, sorted(named), lost)
        named |= {p.strip().lower() for p in seen if p.strip()}
    keys = sorted(named)
    presence = await inventory.pools_known(pool_ids=keys) if keys else {}
    verdict = absence_verdict(
        vm_id,
        {key: presence.get(key) is PoolPresence.HELD for key in keys},
        without_vms=[key for key in keys if presence.get(key) is PoolPresence.WITHOUT_VMS],
    )
    if isinstance(verdict, VMDeletedError):
        vm = await inventory.get_vm(vm_id=vm_id)
        if vm is not None:
            return vm
    return verdict


def pick_by_name(name: str, matches: Sequence[VM]) -> VM | None:
    """The one VM named like the node; None for none; AmbiguousVMError for several."""
    if len(matches) > 1:
        ids = tuple(sorted(vm.id for vm in matches))
        raise AmbiguousVMError(
            f"node {name}: {len(matches)} VMs are named {name!r} ({', '.join(ids)}); "
            "refusing to guess",
            vm_ids=ids,
        )
    return matches[0] if matches else None


async def locate_vm(inventory: Inventory, node: Node, *, match_by_name: bool) -> VM:
    """The VM of a node, asked of XO (registration).

    Order: :func:`vm_id_candidates`; then, for a node without providerID and
    when enabled, the one VM whose ``name_label`` is the node name. Raises
    VMNotFoundError when nothing matches (its ``tried`` says how it was looked
    for), AmbiguousVMError for several name matches, InvalidNodeError for a
    foreign providerID, ProviderIDError for a malformed one of ours.
    """
    if node.provider_id and not is_ours(node.provider_id):
        raise InvalidNodeError(f"node {node.name} has a foreign providerID {node.provider_id!r}")
    candidates = vm_id_candidates(node)
    tried: list[str] = []
    ways: list[str] = []
    for candidate in candidates:
        tried.append(candidate)
        ways.append(_way(node, candidate))
        vm = await inventory.get_vm(vm_id=candidate)
        if vm is not None:
            return vm
    if node.provider_id:
        raise VMNotFoundError(candidates[0], tried=ways)
    if match_by_name:
        vm = pick_by_name(node.name, await inventory.find_vms_by_name(name_label=node.name))
        if vm is not None:
            return vm
        tried.append(f"name_label={node.name}")
        ways.append(f"name_label {node.name!r}")
    detail = ", ".join(tried) if tried else "no providerID and no valid systemUUID"
    uuid = node.system_uuid.strip().lower()
    raise VMNotFoundError(
        uuid or node.name, f"node {node.name}: no VM found ({detail})", tried=ways
    )


def _way(node: Node, candidate: str) -> str:
    """How ``candidate`` was looked for, in words (``systemUUID <uuid>``...)."""
    how = matched_by(node, candidate)
    if how is MatchedBy.PROVIDER_ID:
        return f"providerID {node.provider_id}"
    return f"{how.value} {candidate}"


class VMIndex:
    """A snapshot indexed once for per-node lookups (by id, and by name when asked)."""

    def __init__(self, snapshot: InventorySnapshot, *, without_vms: Collection[str] = ()) -> None:
        """``without_vms``: pools of the snapshot XO holds without their VMs (no control
        domain listed): not known, as ``confirm_absence`` judges them."""
        self.snapshot = snapshot
        self._by_id = {vm_id.lower(): vm for vm_id, vm in snapshot.vms.items()}
        self._pools = {p.lower() for p in snapshot.pools} - {p.lower() for p in without_vms}
        self._by_name: dict[str, list[VM]] | None = None

    def vm(self, vm_id: str) -> VM | None:
        return self._by_id.get(vm_id.lower())

    def pool_known(self, pool_id: str) -> bool:
        return pool_id.lower() in self._pools

    def named(self, name: str) -> list[VM]:
        if self._by_name is None:
            self._by_name = {}
            for vm in self.snapshot.vms.values():
                self._by_name.setdefault(vm.name_label, []).append(vm)
        return self._by_name.get(name, [])

    def host(self, host_id: str) -> Host | None:
        return self.snapshot.hosts.get(host_id)

    def pool(self, pool_id: str) -> Pool | None:
        return self.snapshot.pools.get(pool_id)


@dataclass(frozen=True, slots=True)
class SnapshotMatch:
    """A node's VM as found in one snapshot, the way the CCM finds it.

    ``pools`` are the node's :func:`placement_pools` (plus the found VM's
    own pool); ``unknown_pools`` those the snapshot does not know. ``verdict``
    is what the VM's absence means (None when the VM was found or nothing
    was looked up).
    """

    vm: VM | None = None
    matched_by: MatchedBy | None = None
    tried: tuple[str, ...] = ()
    pools: frozenset[str] = frozenset()
    unknown_pools: tuple[str, ...] = ()
    ambiguous: tuple[str, ...] = ()
    verdict: VMNotFoundError | None = None


def locate_in_snapshot(node: Node, index: VMIndex, *, match_by_name: bool) -> SnapshotMatch:
    """The node's VM in ``index`` by the CCM's own rule, without any request.

    A foreign providerID finds nothing here (the CCM ignores such nodes); a
    malformed one of ours finds nothing either (callers name the problem).
    """
    try:
        candidates = vm_id_candidates(node)
    except ProviderIDError:
        return SnapshotMatch()
    if node.provider_id and not candidates:
        return SnapshotMatch()
    tried: list[str] = []
    for candidate in candidates:
        tried.append(candidate)
        vm = index.vm(candidate)
        if vm is not None:
            return _found(node, index, vm, matched_by(node, candidate), tried)
    if match_by_name and not node.provider_id:
        tried.append(f"name_label={node.name}")
        try:
            vm = pick_by_name(node.name, index.named(node.name))
        except AmbiguousVMError as err:
            return SnapshotMatch(tried=tuple(tried), ambiguous=err.vm_ids)
        if vm is not None:
            return _found(node, index, vm, MatchedBy.NAME_LABEL, tried)
    pools = placement_pools(node)
    known = {pool: index.pool_known(pool) for pool in sorted(pools)}
    verdict = absence_verdict(tried[0], known) if node.provider_id else None
    return SnapshotMatch(
        tried=tuple(tried),
        pools=pools,
        unknown_pools=tuple(p for p, k in known.items() if not k),
        verdict=verdict,
    )


def _found(
    node: Node, index: VMIndex, vm: VM, how: MatchedBy, tried: Iterable[str]
) -> SnapshotMatch:
    pools = placement_pools(node) | ({vm.pool_id.lower()} if vm.pool_id else set())
    unknown = tuple(sorted(p for p in pools if not index.pool_known(p)))
    return SnapshotMatch(vm, how, tuple(tried), frozenset(pools), unknown)
