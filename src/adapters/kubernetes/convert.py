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

from domain.errors import InvalidNodeError
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


def _mapping(value: Any) -> Mapping[str, Any]:
    """A JSON object, or an empty one in place of anything else (a field of the wrong type)."""
    return value if isinstance(value, dict) else {}


def _items(value: Any) -> list[Mapping[str, Any]]:
    """The objects of a JSON array; anything else, or a non-object entry, is left out."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


#: Enum members by their wire value: a dict lookup, not an Enum call that raises
#: (each Node read converts its taints, addresses and Ready condition).
_EFFECTS = {effect.value: effect for effect in TaintEffect}
_ADDRESS_TYPES = {kind.value: kind for kind in AddressType}
_READINESS = {readiness.value: readiness for readiness in Readiness}


def _member(members: Mapping[str, Any], value: Any) -> Any:
    """The member spelled ``value``, None for anything else (an unhashable one too)."""
    return members.get(value) if isinstance(value, str) else None


def _taint(raw: Mapping[str, Any]) -> Taint | None:
    effect = _member(_EFFECTS, raw.get("effect", ""))
    if effect is None:
        logger.debug(
            "ignoring taint {} with unknown effect {!r}", raw.get("key"), raw.get("effect")
        )
        return None
    return Taint(
        key=_text(raw.get("key")),
        effect=effect,
        value=_text(raw.get("value")),
        time_added=parse_time(raw.get("timeAdded")),
    )


def _address(raw: Mapping[str, Any]) -> NodeAddress | None:
    address = raw.get("address")
    kind = _member(_ADDRESS_TYPES, raw.get("type", ""))
    if not isinstance(address, str) or kind is None:
        return None
    return NodeAddress(type=kind, address=address)


def _readiness(conditions: Any) -> Readiness:
    for condition in _items(conditions):
        if condition.get("type") == "Ready":
            found: Readiness | None = _member(_READINESS, condition.get("status", "Unknown"))
            return Readiness.UNKNOWN if found is None else found
    return Readiness.MISSING


def node_from_object(obj: Any) -> Node:
    """The domain Node for a v1 Node object (as decoded JSON).

    The API server validates Nodes, but what reaches here may have passed a
    proxy, an aggregated API or a future version: a field of the wrong JSON
    type reads as absent, and only a Node without a name, which nothing can
    be done with, raises InvalidNodeError (the store skips it, logged).
    """
    if not isinstance(obj, dict):
        raise InvalidNodeError(f"a Node that is not a JSON object ({type(obj).__name__})")
    meta = _mapping(obj.get("metadata"))
    spec = _mapping(obj.get("spec"))
    status = _mapping(obj.get("status"))
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidNodeError("a Node without metadata.name")
    taints = tuple(t for raw in _items(spec.get("taints")) if (t := _taint(raw)) is not None)
    addresses = tuple(
        a for raw in _items(status.get("addresses")) if (a := _address(raw)) is not None
    )
    return Node(
        name=name,
        uid=_text(meta.get("uid")),
        resource_version=_text(meta.get("resourceVersion")),
        provider_id=_text(spec.get("providerID")),
        system_uuid=_text(_mapping(status.get("nodeInfo")).get("systemUUID")),
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
    Labels and annotations to remove are sent as null. ``spec.providerID`` is sent whenever
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
    annotations: dict[str, str | None] = {
        key: None
        for key in change.remove_annotations
        if key in node.annotations and key not in change.set_annotations
    }
    annotations.update(
        {k: v for k, v in change.set_annotations.items() if node.annotations.get(k) != v}
    )
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
    when they are already those (in order: kubelet and clients read the first).

    ``metadata.uid`` makes the server refuse it if the Node was deleted and created
    again under its name since ``node`` was read: the addresses are those of the
    old Node's VM. (No resourceVersion: kubelet's status heartbeats would make it
    conflict all the time, and the list is replaced whole, computed from the VM.)
    """
    if tuple(addresses) == node.addresses:
        return None
    patch: JsonObject = {"status": {"addresses": [address_to_object(a) for a in addresses]}}
    if node.uid:
        patch["metadata"] = {"uid": node.uid}
    return patch
