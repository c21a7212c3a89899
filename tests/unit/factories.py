"""Small builders for domain values, so each test states only what it is about."""

from __future__ import annotations

from datetime import UTC, datetime

from domain import labels
from domain.model import VM, Host, Node, Pool, PowerState, Readiness, Taint, TaintEffect

POOL_A = "b7569d99-30f8-178a-7d94-801de3e29b5b"
POOL_B = "355ee47d-ff4c-4924-3db2-fd86ae629676"
HOST_1 = "b61a5c92-700e-4966-a13b-00633f03eea8"
HOST_2 = "c61a5c92-700e-4966-a13b-00633f03eea9"
HOST_3 = "d61a5c92-700e-4966-a13b-00633f03eeaa"
VM_1 = "f07ab729-c0e8-721c-45ec-f11276377030"
VM_2 = "a07ab729-c0e8-721c-45ec-f11276377031"

GIB = 1024**3
UNINITIALIZED = Taint(
    key=labels.UNINITIALIZED_TAINT_KEY, value="true", effect=TaintEffect.NO_SCHEDULE
)


def vm(**overrides: object) -> VM:
    fields: dict[str, object] = dict(
        id=VM_1,
        name_label="worker-1",
        power_state=PowerState.RUNNING,
        pool_id=POOL_A,
        container=HOST_1,
        cpus=2,
        memory_bytes=4 * GIB,
        main_ip_address="10.1.6.166",
    )
    fields.update(overrides)
    return VM(**fields)  # type: ignore[arg-type]


def host(host_id: str = HOST_1, name: str = "xcp-host-1", pool_id: str = POOL_A) -> Host:
    return Host(id=host_id, name_label=name, pool_id=pool_id)


def pool(pool_id: str = POOL_A, name: str = "Pool A") -> Pool:
    return Pool(id=pool_id, name_label=name)


def node(name: str = "worker-1", **overrides: object) -> Node:
    fields: dict[str, object] = dict(
        name=name,
        uid=f"uid-{name}",
        system_uuid=VM_1,
        taints=(UNINITIALIZED,),
        readiness=Readiness.TRUE,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    fields.update(overrides)
    return Node(**fields)  # type: ignore[arg-type]
