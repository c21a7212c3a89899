"""The hook through which XO request metrics leave the adapter.

The adapter must not import a metrics library (the composition root picks
one), so it reports every HTTP attempt to any object with an
``observe_xo_request`` method. Endpoints are templates (``GET /vms/{id}``),
never raw URLs, so a metric label set stays bounded whatever the VM count.
"""

from __future__ import annotations

from typing import Final, Protocol

from loguru import logger

#: The short error classes reported to the observer (``None`` means success).
ERROR_TIMEOUT: Final = "timeout"
ERROR_CONNECTION: Final = "connection"
ERROR_TLS: Final = "tls"
ERROR_5XX: Final = "5xx"
ERROR_RATE_LIMITED: Final = "429"
ERROR_CLIENT: Final = "4xx"
ERROR_AUTH: Final = "auth"
ERROR_NOT_FOUND: Final = "not_found"
ERROR_PROTOCOL: Final = "protocol"


class XORequestObserver(Protocol):
    """Receives one call per HTTP attempt (a retried request reports each try)."""

    def observe_xo_request(self, *, endpoint: str, seconds: float, error: str | None) -> None:
        """``endpoint`` like ``GET /vms/{id}``; ``error`` None or one of the ERROR_* classes."""
        ...


#: The change stream's states reported to an observer that has
#: ``observe_xo_event_stream`` (optional: older observers only measure requests).
STREAM_CONNECTED: Final = "connected"
STREAM_POLLING: Final = "polling"
STREAM_DOWN: Final = "down"
STREAM_STOPPED: Final = "stopped"


class XOEventStreamObserver(Protocol):
    """Receives the change stream's state each time it changes."""

    def observe_xo_event_stream(
        self, *, state: str | None = None, supported: bool | None = None
    ) -> None:
        """``state`` one of the STREAM_* values (None: unchanged); ``supported`` True once
        XO served its event stream, False once it answered 404 on it, None: unchanged."""
        ...


class NullObserver:
    """The default observer: measures nothing."""

    def observe_xo_request(self, *, endpoint: str, seconds: float, error: str | None) -> None:
        return None


def safe_observe(
    observer: XORequestObserver, *, endpoint: str, seconds: float, error: str | None
) -> None:
    """Report to the observer; a broken observer must never fail an XO request."""
    try:
        observer.observe_xo_request(endpoint=endpoint, seconds=seconds, error=error)
    except Exception as err:  # the observer is someone else's code
        logger.warning("XO request observer failed: {}", type(err).__name__)


def safe_observe_stream(
    observer: object, *, state: str | None, supported: bool | None = None
) -> None:
    """Report the stream's state, if ``observer`` listens to it; never raises."""
    report = getattr(observer, "observe_xo_event_stream", None)
    if report is None:
        return
    try:
        report(state=state, supported=supported)
    except Exception as err:  # the observer is someone else's code
        logger.warning("XO event stream observer failed: {}", type(err).__name__)
