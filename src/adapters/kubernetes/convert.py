"""Between API objects (plain JSON dicts) and the domain's lean values.

Only the fields the CCM reads survive conversion, so the cache holds a few
hundred bytes per Node instead of the API object's kilobytes. Patches are
built here too, from the copy the caller read: what they send is exactly the
difference, so a change that changes nothing sends nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from loguru import logger

from domain.model import (
    AddressType,
    Node,
    NodeAddress,
    NodeChange,
    Readiness,
    Taint,
    TaintEffect,
)

JsonObject = dict[str, Any]


# -- time -----------------------------------------------------------------
def format_time(moment: datetime) -> str:
    """``metav1.Time``: RFC 3339, whole seconds, UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_micro_time(moment: datetime) -> str:
    """``metav1.MicroTime``: RFC 3339 with exactly six fractional digits (the server's
    parser insists on them, which ``isoformat()`` drops at zero microseconds)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# -- Node -> domain ---------------------------------------------------------
def _str_map(value: Any) -> Mapping[str, str]:
    if not isinstance(value, dict) or not value:
        return MappingProxyType({})
    return MappingProxyType({str(k): str(v) for k, v in value.items()})


def _taint(raw: Mapping[str, Any]) -> Taint | None:
    try:
        effect = TaintEffect(raw.get("effect", ""))
    except ValueError:
        logger.debug(
            "ignoring taint {} with unknown effect {!r}", raw.get("key"), raw.get("effect")
        )
        return None
    return Taint(
        key=str(raw.get("key", "")),
        effect=effect,
        value=str(raw.get("value") or ""),
        time_added=parse_time(raw.get("timeAdded")),
    )


def _address(raw: Mapping[str, Any]) -> NodeAddress | None:
    try:
        return NodeAddress(type=AddressType(raw.get("type", "")), address=str(raw["address"]))
    except (ValueError, KeyError):
        return None


def _readiness(conditions: Any) -> Readiness:
    for condition in conditions or ():
        if isinstance(condition, dict) and condition.get("type") == "Ready":
            try:
                return Readiness(condition.get("status", "Unknown"))
            except ValueError:
                return Readiness.UNKNOWN
    return Readiness.MISSING


def node_from_object(obj: Mapping[str, Any]) -> Node:
    """The domain Node for a v1 Node object (as decoded JSON)."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    taints = tuple(t for raw in spec.get("taints") or () if (t := _taint(raw)) is not None)
    addresses = tuple(
        a for raw in status.get("addresses") or () if (a := _address(raw)) is not None
    )
    return Node(
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid") or ""),
        resource_version=str(meta.get("resourceVersion") or ""),
        provider_id=str(spec.get("providerID") or ""),
        system_uuid=str((status.get("nodeInfo") or {}).get("systemUUID") or ""),
        labels=_str_map(meta.get("labels")),
        annotations=_str_map(meta.get("annotations")),
        taints=taints,
        addresses=addresses,
        readiness=_readiness(status.get("conditions")),
        created_at=parse_time(meta.get("creationTimestamp")),
    )


# -- domain -> API ------------------------------------------------------------
def taint_to_object(taint: Taint) -> JsonObject:
    obj: JsonObject = {"key": taint.key, "effect": taint.effect.value}
    if taint.value:
        obj["value"] = taint.value
    if taint.time_added is not None:
        obj["timeAdded"] = format_time(taint.time_added)
    return obj


def address_to_object(address: NodeAddress) -> JsonObject:
    return {"type": address.type.value, "address": address.address}


def node_patch(node: Node, change: NodeChange) -> JsonObject | None:
    """A JSON merge patch writing ``change`` onto ``node``, or None when it changes nothing.

    ``metadata.resourceVersion`` makes the server refuse the patch (409) if
    the Node changed since ``node`` was read: the taint list is replaced
    whole, so it must be computed from the very version it replaces.
    Labels to remove are sent as null. ``spec.providerID`` is sent whenever
    the change sets one that differs from the Node's, so a change of an
    already-set providerID reaches the server, which refuses it.
    """
    after = change.apply(node)
    meta: JsonObject = {}
    labels: dict[str, str | None] = {
        key: None
        for key in change.remove_labels
        if key in node.labels and key not in change.set_labels
    }
    labels.update({k: v for k, v in change.set_labels.items() if node.labels.get(k) != v})
    if labels:
        meta["labels"] = labels
    annotations = {k: v for k, v in change.set_annotations.items() if node.annotations.get(k) != v}
    if annotations:
        meta["annotations"] = annotations
    spec: JsonObject = {}
    if change.provider_id and change.provider_id != node.provider_id:
        spec["providerID"] = change.provider_id
    if _taint_keys(after.taints) != _taint_keys(node.taints):
        spec["taints"] = [taint_to_object(t) for t in after.taints]
    if not meta and not spec:
        return None
    meta["resourceVersion"] = node.resource_version
    patch: JsonObject = {"metadata": meta}
    if spec:
        patch["spec"] = spec
    return patch


def _taint_keys(taints: Sequence[Taint]) -> list[tuple[str, str, str]]:
    return [(t.key, t.effect.value, t.value) for t in taints]


def addresses_patch(node: Node, addresses: Sequence[NodeAddress]) -> JsonObject | None:
    """A merge patch for the status subresource replacing ``status.addresses``, or None
    when they are already those (in order: kubelet and clients read the first)."""
    if tuple(addresses) == node.addresses:
        return None
    return {"status": {"addresses": [address_to_object(a) for a in addresses]}}
