"""In-memory implementations of every port.

Public on purpose: the unit tests, the demo and any platform embedding the
services use them. Each keeps its state in plain attributes you can assert on,
behaves like the real system where the services could notice the difference
(resourceVersion conflicts, immutable providerIDs, pools that vanish with
their VMs), and offers methods to drive it (add a VM, migrate it, stop it...).
"""

from adapters.testing.memory.breaker import InMemoryBreakerStore
from adapters.testing.memory.certificates import InMemoryCertificateRequests
from adapters.testing.memory.clock import FakeClock
from adapters.testing.memory.events import InMemoryEventRecorder, RecordedEvent
from adapters.testing.memory.inventory import InMemoryInventory
from adapters.testing.memory.leader import InMemoryLeaderElector
from adapters.testing.memory.metrics import InMemoryMetrics
from adapters.testing.memory.nodes import InMemoryNodeStore
from adapters.testing.memory.pokes import RecordingPokes

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
