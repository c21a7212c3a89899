"""The shapes requests and answers take on the wire, shared by the client and its watches."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

#: A decoded JSON object (the API server's answers are plain dicts here, never models).
JsonObject = dict[str, Any]
#: Query parameters, in order (``watch=1``, ``resourceVersion=...``).
Query = Sequence[tuple[str, str]]
#: Seconds, or (connect, read) seconds.
Timeout = float | tuple[float, float]
JSON = "application/json"
#: (status, reason, headers, body) of one answer.
Answer = tuple[int, str, Mapping[str, str], bytes]


class StreamedAnswer(Protocol):
    """An answer read as it arrives (a watch): what the client and its watches use of
    it, whichever connection carries it."""

    @property
    def status(self) -> int: ...

    @property
    def reason(self) -> str: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    async def readany(self) -> bytes:
        """What arrived since the last read, waiting for something; b"" at the end."""
        ...

    async def read(self) -> bytes:
        """The rest of the body."""
        ...

    def close(self) -> None: ...
