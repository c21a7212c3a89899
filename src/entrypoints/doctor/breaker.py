"""``doctor --reset-deletion-breaker``: the operator's reset of the deletion breaker.

The breaker's state lives in the cluster (the Lease
``<leader-elect-resource-name>-deletion-breaker``), so restarting the CCM no
longer resets it; this does, through the CCM's own store adapter (the
container's ``breaker_store``), and says what it found. The leader sees the
reset at its next lifecycle pass.
"""

from __future__ import annotations

from datetime import UTC, datetime

from adapters.kubernetes import ApiError, KubeConfigError, breaker_lease_name
from domain.errors import BreakerStoreError
from domain.policies.deletion_breaker import BreakerState
from domain.services.deletion_breaker import reset_breaker
from entrypoints.container import Container, provide, shutdown
from entrypoints.doctor.findings import EXIT_CANNOT_CHECK, EXIT_OK
from entrypoints.doctor.options import DoctorOptions
from entrypoints.flags.settings import Settings


def _was(state: BreakerState) -> str:
    if state.tripped_at is not None:
        since = datetime.fromtimestamp(state.tripped_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"it was tripped (since {since}) with {len(state.deletions)} deletions recorded"
    return f"it was armed with {len(state.deletions)} deletions recorded"


async def reset_deletion_breaker(opts: DoctorOptions) -> tuple[int, str]:
    """Reset the breaker of the CCM named by ``opts``; the exit code and one line."""
    where = f"Lease {opts.lease_namespace}/{breaker_lease_name(opts.lease_name)}"
    container = Container(
        settings=Settings(
            kubeconfig=opts.kubeconfig,
            leader_elect_resource_name=opts.lease_name,
            leader_elect_resource_namespace=opts.lease_namespace,
        )
    )
    container.write_fence.override(None)  # an operator's write, whoever leads
    try:
        store = await provide(container.breaker_store)
        before = await reset_breaker(store)
    except (KubeConfigError, ApiError, BreakerStoreError) as err:
        return EXIT_CANNOT_CHECK, f"deletion breaker not reset: {where}: {err}"
    finally:
        await shutdown(container)
    return EXIT_OK, f"deletion breaker reset ({where}): {_was(before)}; it is armed, window empty"
