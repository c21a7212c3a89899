"""What the API server said when it said no, decoded once.

Every caller needs the ``Status`` object's ``reason`` and ``code`` (Conflict vs
AlreadyExists are both 409; Expired is 410), so answers are decoded into
:class:`ApiError` in one place and adapters map that to the domain's errors.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import aiohttp


class UnsendableRequestError(Exception):
    """The HTTP library refused to send a request, typically a header holding a
    control character (a kubeconfig token with a line break inside). Its own error
    quotes the header, bearer token included, so it is replaced by this one."""

    def __init__(self) -> None:
        super().__init__(
            "request not sent: a header holds a control character"
            " (does the kubeconfig's token have a line break inside?)"
        )


#: What a request (or a watch read) raises when no answer came back (a timeout is
#: an OSError).
NETWORK_ERRORS = (aiohttp.ClientError, OSError)


def describe_network_error(err: BaseException) -> str:
    """One line for a network failure (never the request's headers)."""
    text = str(err).splitlines()[0] if str(err) else "timed out"
    return f"{type(err).__name__}: {text}"


class KubeConfigError(ValueError):
    """No usable kubeconfig / in-cluster configuration."""


class ApiError(Exception):
    """A failed Kubernetes API request.

    ``status`` is the HTTP status (0 when no response arrived at all),
    ``reason`` the ``Status.reason`` (``NotFound``, ``Conflict``,
    ``AlreadyExists``, ``Invalid``, ``Expired``, ``Gone``...), ``message``
    the server's human message. Never carries request headers, so it is safe
    to log (no bearer token).
    """

    def __init__(
        self,
        status: int,
        reason: str,
        message: str,
        *,
        method: str = "",
        path: str = "",
        details: Mapping[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        where = f"{method} {path}: " if method else ""
        super().__init__(f"{where}{status or 'no response'} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.method = method
        self.path = path
        self.details: Mapping[str, Any] = details or {}
        self.retry_after = retry_after

    @classmethod
    def from_response(
        cls,
        status: int,
        http_reason: str,
        data: bytes,
        *,
        method: str,
        path: str,
        headers: Mapping[str, str] | None = None,
    ) -> ApiError:
        reason, message = http_reason, data.decode("utf-8", "replace")[:500]
        details: Mapping[str, Any] = {}
        try:
            body = json.loads(data)
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("kind") == "Status":
            reason = str(body.get("reason") or http_reason)
            message = str(body.get("message") or "")
            details = body.get("details") or {}
        return cls(
            status,
            reason,
            message,
            method=method,
            path=path,
            details=details,
            retry_after=_retry_after(headers or {}),
        )

    @classmethod
    def from_status_object(cls, obj: Mapping[str, Any], *, method: str, path: str) -> ApiError:
        """The ``Status`` carried by a watch ``ERROR`` event."""
        return cls(
            int(obj.get("code") or 0),
            str(obj.get("reason") or "Unknown"),
            str(obj.get("message") or ""),
            method=method,
            path=path,
            details=obj.get("details") or {},
        )

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        """409 because of a resourceVersion/uid precondition (not AlreadyExists)."""
        return self.status == 409 and self.reason != "AlreadyExists"

    @property
    def already_exists(self) -> bool:
        return self.status == 409 and self.reason == "AlreadyExists"

    @property
    def gone(self) -> bool:
        """The resourceVersion is too old (compacted): re-list."""
        return self.status == 410 or self.reason in ("Expired", "Gone")

    @property
    def invalid(self) -> bool:
        return self.status == 422

    @property
    def retryable(self) -> bool:
        """Throttled or a server-side failure: the same request may succeed later."""
        return self.status == 429 or self.status >= 500


class ApiUnavailableError(ApiError):
    """No HTTP response: connection refused or reset, TLS failure, timeout."""

    def __init__(self, message: str, *, method: str = "", path: str = "") -> None:
        super().__init__(0, "Unavailable", message, method=method, path=path)


def undecodable_answer(
    status: int, headers: Mapping[str, str], data: bytes, *, method: str, path: str
) -> ApiError:
    """A 2xx whose body is not a JSON document (a proxy's page, a cut body): an
    ApiError like any other failure, so callers' error handling covers it."""
    ctype = next((v for k, v in headers.items() if k.lower() == "content-type"), "?")
    return ApiError(
        status,
        "InvalidResponse",
        f"the body is not JSON ({ctype}, {len(data)} bytes)",
        method=method,
        path=path,
    )


def _retry_after(headers: Mapping[str, str]) -> float | None:
    for key, value in headers.items():
        if key.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except ValueError:
                return None
    return None
