"""What the XO adapter makes of a failed exchange: its errors (404, retryable,
TLS, credentials refused) and their class for the metrics, the message of an error
answer, ``Retry-After``, and the adapter's error for a failure of the HTTP library.

Kept apart from the client so that every way an exchange can fail is mapped
in one readable place; no text built here contains a request header.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import ssl
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from adapters.xenorchestra import observer as obs
from domain.errors import AuthenticationError, InventoryError, ProtocolError, TLSHandshakeError


class XONotFound(InventoryError):
    """XO answered 404 for this object or endpoint (internal to the adapter).

    ``error`` is the answer's body when it is XO's error object (``{"error": ...}``),
    else None: a 404 in some other shape may come from something in front of XO.
    """

    def __init__(self, endpoint: str, message: str, error: Mapping[str, Any] | None) -> None:
        super().__init__(f"{endpoint}: 404 {message}")
        self.endpoint = endpoint
        self.error = error
        #: ``404 <message>``, the message cut short (a page may be long)
        self.status_line = f"404 {message[:80]}"

    def says_missing(self, kind: str, object_id: str) -> bool:
        """Whether this is XO saying it has no ``kind`` (``VM``) ``object_id``: its error
        object naming both (``{"error": ..., "data": {"id": ..., "type": ...}}``)."""
        data = None if self.error is None else self.error.get("data")
        return (
            isinstance(data, Mapping)
            and data.get("type") == kind
            and str(data.get("id", "")).strip().lower() == object_id
        )


class XORedirect(InventoryError):
    """XO answered a redirect (its ``/users/me`` alias does): the caller decides whether
    to follow it. Only the ``Location`` is kept (internal to the adapter)."""

    def __init__(self, endpoint: str, status: int, location: str) -> None:
        super().__init__(f"{endpoint}: {status} redirect to {location!r}")
        self.location = location


class Transient(Exception):
    """A failure worth retrying; carries the server's Retry-After when it sent one."""

    def __init__(self, message: str, *, kind: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.retry_after = retry_after


class TLSError(TLSHandshakeError):
    """The TLS handshake failed: retrying cannot fix a certificate."""


class CredentialsRefused(AuthenticationError):
    """XO refused the credentials of ``generation`` (see ``CredentialSource``)."""

    def __init__(self, message: str, *, status: int, generation: int) -> None:
        super().__init__(message, status=status)
        self.generation = generation


def error_class(err: BaseException) -> str:
    """The observer's short class for a failed attempt."""
    if isinstance(err, Transient):
        return err.kind
    if isinstance(err, XONotFound):
        return obs.ERROR_NOT_FOUND
    if isinstance(err, AuthenticationError):
        return obs.ERROR_AUTH
    if isinstance(err, ProtocolError):
        return obs.ERROR_PROTOCOL
    if isinstance(err, TLSError):
        return obs.ERROR_TLS
    if isinstance(err, InventoryError):
        return obs.ERROR_CLIENT
    return "cancelled" if isinstance(err, asyncio.CancelledError) else "error"


def xo_error(text: str) -> Mapping[str, Any] | None:
    """The body as XO's error object (``{"error": "<message>", "data": ...}``), or None."""
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if isinstance(body, Mapping) and isinstance(body.get("error"), str):
        return body
    return None


def error_message(text: str, reason: str) -> str:
    """XO's ``{"error": ...}`` message, or the start of a plain-text body (``text``),
    else the status line's ``reason``.

    Older XO answers 401 with ``Unauthorized`` as text/plain, proxies answer
    HTML: anything goes, so this never raises.
    """
    body = xo_error(text)
    if body is not None:
        return str(body["error"])[:200]
    text = " ".join(text.split())
    return text[:120] or reason or "no message"


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date; None if absent/invalid."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def library_error(endpoint: str, err: httpx.HTTPError) -> InventoryError:
    """The adapter's error for a failure of the HTTP library itself: a body it
    cannot decode (bogus ``Content-Encoding``) is XO's protocol broken; the
    rest (a connection lost mid-stream...) is XO not answering."""
    if isinstance(err, httpx.LocalProtocolError):
        # Our own request was refused before it left (a header value the library
        # cannot send): its message quotes the header, credentials included.
        return InventoryError(
            f"Xen Orchestra {endpoint}: the request could not be sent "
            "(a header value the HTTP library refuses)"
        )
    text = f"Xen Orchestra {endpoint}: {type(err).__name__}: {err}"
    if isinstance(err, httpx.DecodingError):
        return ProtocolError(text)
    return InventoryError(text)


def is_tls_failure(err: BaseException) -> bool:
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, ssl.SSLError | ssl.CertificateError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
