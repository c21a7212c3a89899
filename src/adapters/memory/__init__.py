"""In-memory implementations of every port.

Public on purpose: the unit tests, the demo and any platform embedding the
services use them. Each keeps its state in plain attributes you can assert on,
behaves like the real system where the services could notice the difference
(resourceVersion conflicts, immutable providerIDs, pools that vanish with
their VMs), and offers methods to drive it (add a VM, migrate it, stop it...).
They ship with the package; only :mod:`entrypoints` imports them, and never
anything the controller process loads (import-linter contracts).
"""

from adapters.memory.breaker import InMemoryBreakerStore
from adapters.memory.certificates import InMemoryCertificateRequests
from adapters.memory.clock import FakeClock
from adapters.memory.events import InMemoryEventRecorder, RecordedEvent
from adapters.memory.inventory import InMemoryInventory
from adapters.memory.leader import InMemoryLeaderElector
from adapters.memory.metrics import InMemoryMetrics
from adapters.memory.nodes import InMemoryNodeStore
from adapters.memory.pokes import RecordingPokes

__all__ = [
    "FakeClock",
    "InMemoryBreakerStore",
    "InMemoryCertificateRequests",
    "InMemoryEventRecorder",
    "InMemoryInventory",
    "InMemoryLeaderElector",
    "InMemoryMetrics",
    "InMemoryNodeStore",
    "RecordedEvent",
    "RecordingPokes",
]
