"""The deletion breaker's state on a real API server: annotations of a Lease.

The Lease ``<leader-elect-resource-name>-deletion-breaker`` sits next to the
leader Lease, in its namespace: the shipped Roles grant ``get``/``update`` on
exactly those two names (and ``create``), so the breaker needs no permission
of its own and dies with the installation. Nobody holds that Lease; it is a
small versioned record:

- ``deletion-breaker.k8s.xenorchestra/deletions``: the times of the deletions
  granted in the window, RFC 3339 (microseconds), comma separated;
- ``deletion-breaker.k8s.xenorchestra/tripped-at``: when it tripped (absent
  while armed).

Writes are updates guarded by the Lease's resourceVersion (a create when it
does not exist yet), so a reset by ``doctor`` or a second writer is never
overwritten blindly. Annotations that do not parse are an error, never an
armed breaker.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

from adapters.kubernetes.client import KubeClient
from adapters.kubernetes.convert import format_micro_time
from adapters.kubernetes.errors import ApiError
from adapters.kubernetes.wire import JsonObject
from domain.errors import BreakerConflictError, BreakerStoreError
from domain.policies.deletion_breaker import ARMED, BreakerState, StoredBreaker

DELETIONS = "deletion-breaker.k8s.xenorchestra/deletions"
TRIPPED_AT = "deletion-breaker.k8s.xenorchestra/tripped-at"
SUFFIX = "-deletion-breaker"


def breaker_lease_name(leader_lease: str) -> str:
    """The breaker's Lease, named after the leader Lease."""
    return f"{leader_lease}{SUFFIX}"


def _format(at: float) -> str:
    return format_micro_time(datetime.fromtimestamp(at, UTC))


def _parse(value: str, *, key: str) -> float:
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BreakerStoreError(f"annotation {key}: {value.strip()!r} is not a time") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def state_from_annotations(annotations: object) -> BreakerState:
    if annotations is None:
        return ARMED
    if not isinstance(annotations, dict):
        raise BreakerStoreError("metadata.annotations is not a map")
    deletions = str(annotations.get(DELETIONS) or "")
    tripped = str(annotations.get(TRIPPED_AT) or "")
    return BreakerState(
        deletions=tuple(
            sorted(_parse(part, key=DELETIONS) for part in deletions.split(",") if part.strip())
        ),
        tripped_at=_parse(tripped, key=TRIPPED_AT) if tripped.strip() else None,
    )


def annotations_of(state: BreakerState) -> dict[str, str | None]:
    """The annotations for ``state`` (None deletes a key, in a merge or an update)."""
    return {
        DELETIONS: ",".join(_format(at) for at in state.deletions),
        TRIPPED_AT: None if state.tripped_at is None else _format(state.tripped_at),
    }


class KubernetesBreakerStore:
    """Implements ``domain.ports.DeletionBreakerStore`` on the Lease ``namespace/name``."""

    def __init__(self, client: KubeClient, *, leader_lease: str, namespace: str) -> None:
        self._client = client
        self.name = breaker_lease_name(leader_lease)
        self.namespace = namespace
        self._leases = f"/apis/coordination.k8s.io/v1/namespaces/{quote(namespace, safe='')}/leases"
        self._path = f"{self._leases}/{quote(self.name, safe='')}"

    @property
    def where(self) -> str:
        return f"Lease {self.namespace}/{self.name}"

    def _stored(self, lease: JsonObject) -> StoredBreaker:
        metadata = lease.get("metadata") or {}
        try:
            state = state_from_annotations(metadata.get("annotations"))
        except BreakerStoreError as err:
            raise BreakerStoreError(f"{self.where}: {err}") from None
        return StoredBreaker(state, str(metadata.get("resourceVersion") or ""))

    async def load(self) -> StoredBreaker:
        try:
            lease = await self._client.request("GET", self._path)
        except ApiError as err:
            if err.not_found:
                return StoredBreaker(ARMED)
            raise BreakerStoreError(f"{self.where}: cannot read it: {err}") from None
        return self._stored(lease)

    async def save(self, *, state: BreakerState, version: str) -> StoredBreaker:
        annotations = annotations_of(state)
        if not version:
            return await self._create({k: v for k, v in annotations.items() if v is not None})
        # An update (the verb the shipped Roles grant) of the Lease as read, guarded
        # by the version the caller decided on: refused (409) if it changed since.
        try:
            current = await self._client.request("GET", self._path)
        except ApiError as err:
            if err.not_found:
                raise BreakerConflictError(f"{self.where} was deleted meanwhile") from None
            raise BreakerStoreError(f"{self.where}: cannot read it: {err}") from None
        metadata = current.setdefault("metadata", {})
        kept = {
            k: v for k, v in (metadata.get("annotations") or {}).items() if k not in annotations
        }
        metadata["annotations"] = {
            **kept,
            **{k: v for k, v in annotations.items() if v is not None},
        }
        metadata["resourceVersion"] = version
        try:
            written = await self._client.request("PUT", self._path, body=current)
        except ApiError as err:
            if err.status == 409 or err.not_found:
                raise BreakerConflictError(f"{self.where} changed since it was read") from None
            raise BreakerStoreError(f"{self.where}: cannot write it: {err}") from None
        return self._stored(written)

    async def _create(self, annotations: dict[str, str]) -> StoredBreaker:
        lease: JsonObject = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "annotations": annotations,
            },
            "spec": {},
        }
        try:
            written = await self._client.request("POST", self._leases, body=lease)
        except ApiError as err:
            if err.already_exists:
                raise BreakerConflictError(f"{self.where} was created meanwhile") from None
            raise BreakerStoreError(f"{self.where}: cannot create it: {err}") from None
        return self._stored(written)
