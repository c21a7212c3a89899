"""The shapes requests and answers take on the wire, shared by the client and its watches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: A decoded JSON object (the API server's answers are plain dicts here, never models).
JsonObject = dict[str, Any]
#: Query parameters, in order (``watch=1``, ``resourceVersion=...``).
Query = Sequence[tuple[str, str]]
#: Seconds, or (connect, read) seconds.
Timeout = float | tuple[float, float]
JSON = "application/json"
