"""No write from a replica whose leadership may have lapsed, checked as it is sent.

The leader's renewer stops the controllers once renewals fail for the renew
deadline, but it only acts when the event loop runs it: after a stall (a long
garbage collection, a starved CPU, a paused VM) a controller's write can be
next in line with the renewer, and a write held by the client's token bucket
leaves it only once the bucket allows. The fence closes that window where the
write leaves: the controllers' client asks it just before sending anything but
a GET, and it refuses once the last renewal sent is a renew deadline old, the
instant the renewer would give up. What remains is the time the write takes to
reach the server (connecting included, bounded by the connect timeout), which
the lease's margin over the renew deadline covers.

The elector moves the fence (``open_until`` at each won write, ``close`` when
leadership ends); the fence only compares clocks. Leader election's own client
has no fence: it must write to lead again.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from adapters.kubernetes.errors import ApiError


class NotLeadingError(ApiError):
    """A write refused before it was sent: this replica may no longer lead."""

    def __init__(self, message: str, *, method: str, path: str) -> None:
        super().__init__(0, "NotLeading", message, method=method, path=path)
        self.args = (f"{method} {path}: not sent: {message}",)


class LeadershipFence:
    """Lets writes through until a monotonic instant (closed until first opened)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._until: float | None = None

    def open_until(self, until: float) -> None:
        """Writes may be sent until ``until`` (the ``clock``'s time)."""
        self._until = until

    def close(self) -> None:
        """No write is sent until the fence is opened again."""
        self._until = None

    def check(self, method: str, path: str) -> None:
        """Raise NotLeadingError unless a write may be sent now."""
        if self._until is None:
            raise NotLeadingError("this replica does not lead", method=method, path=path)
        late = self._clock() - self._until
        if late >= 0:
            raise NotLeadingError(
                f"leadership not renewed in time ({late:.1f}s past the renew deadline)",
                method=method,
                path=path,
            )
