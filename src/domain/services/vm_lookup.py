"""Finding the VM behind a Node."""

from __future__ import annotations

from domain import labels
from domain.errors import AmbiguousVMError, InvalidNodeError, VMNotFoundError
from domain.model import VM, Node
from domain.policies.system_uuid import swap_little_endian
from domain.ports import Inventory
from domain.providerid import ProviderID, is_ours, is_uuid


def node_pool_hint(node: Node, provider_id: ProviderID) -> str:
    """The pool to check before calling a VM deleted.

    ``xenorchestra:///<vm>`` carries no pool: fall back to the region label
    written at initialization; empty means the deletion cannot be confirmed.
    """
    return provider_id.pool_id or node.labels.get(labels.REGION, "")


async def locate_vm(inventory: Inventory, node: Node, *, match_by_name: bool) -> VM:
    """The VM of a node that has no foreign providerID.

    Order: our providerID; else ``systemUUID`` and its little-endian twin;
    else (when enabled) the one VM whose ``name_label`` is the node name.
    Raises VMNotFoundError when nothing matches, AmbiguousVMError for several
    name matches, InvalidNodeError for a malformed providerID.
    """
    if node.provider_id:
        if not is_ours(node.provider_id):
            raise InvalidNodeError(
                f"node {node.name} has a foreign providerID {node.provider_id!r}"
            )
        pid = ProviderID.parse(node.provider_id)
        return await inventory.get_vm(vm_id=pid.vm_id)

    tried: list[str] = []
    uuid = node.system_uuid.strip().lower()
    if uuid and is_uuid(uuid):
        for candidate in dict.fromkeys((uuid, swap_little_endian(uuid))):
            tried.append(candidate)
            try:
                return await inventory.get_vm(vm_id=candidate)
            except VMNotFoundError:
                continue
    if match_by_name:
        matches = await inventory.find_vms_by_name(name_label=node.name)
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise AmbiguousVMError(
                f"node {node.name}: {len(matches)} VMs are named {node.name!r} "
                f"({', '.join(sorted(vm.id for vm in matches))}); refusing to guess"
            )
        tried.append(f"name_label={node.name}")
    detail = ", ".join(tried) if tried else "no providerID and no valid systemUUID"
    raise VMNotFoundError(uuid or node.name, f"node {node.name}: no VM found ({detail})")
