"""Logging: loguru, klog-like verbosity, optional JSON, secrets masked.

The domain and application layers log through the standard ``logging``
module (they may not import loguru); an intercept handler routes those
records into loguru so there is one stream, one format and one filter.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any
from urllib.parse import quote

from loguru import logger

_secrets: set[str] = set()
MASK = "***"


def secret_forms(value: str) -> set[str]:
    """``value`` as it may appear in text: itself, and escaped as a Python repr, a
    JSON string, bytes or a URL would write it (an HTTP library quoting a header
    writes ``tok\\n`` for a token ending in a newline)."""
    forms = {
        value,
        value.strip(),
        value.encode("unicode_escape").decode("ascii"),
        json.dumps(value)[1:-1],
        repr(value.encode())[2:-1],
        quote(value, safe=""),
    }
    return {form for form in forms if len(form) >= 4}


def register_secret(value: str | None) -> None:
    """Never print ``value`` (a token, a password): it is masked in every record."""
    if value:
        _secrets.update(secret_forms(value))


def mask_secrets(text: str) -> str:
    for secret in sorted(_secrets, key=len, reverse=True):  # longest (escaped) forms first
        text = text.replace(secret, MASK)
    return text


def _patch(record: Any) -> None:
    record["message"] = mask_secrets(record["message"])
    if record["exception"] is not None:
        kind, value, tb = record["exception"]
        if value is not None and any(s in str(value) for s in _secrets):
            record["exception"] = type(record["exception"])(
                kind, kind(mask_secrets(str(value))), tb
            )


def level_for_verbosity(v: int) -> str:
    """klog's ``--v``: 0-3 informational, 4-5 debug, 6 and more trace (request level)."""
    if v >= 6:
        return "TRACE"
    if v >= 4:
        return "DEBUG"
    return "INFO"


class _InterceptHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(depth=6, exception=record.exc_info).log(level, record.getMessage())


def configure_logging(*, verbosity: int = 2, json: bool = False, sink: Any = None) -> None:
    """Send every log record, stdlib or loguru, to ``sink`` (stderr by default)."""
    logger.remove()
    logger.configure(patcher=_patch)
    level = level_for_verbosity(verbosity)
    logger.add(
        sink or sys.stderr,
        level=level,
        serialize=json,
        backtrace=False,
        diagnose=False,  # diagnose would print local variables: secrets included
        format="{time:YYYY-MM-DDTHH:mm:ss.SSSZ} {level: <7} {name}: {message}",
    )
    logging.basicConfig(
        handlers=[_InterceptHandler()],
        level=logging.DEBUG if verbosity >= 4 else logging.INFO,
        force=True,
    )
    for noisy in ("urllib3", "kubernetes", "asyncio", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbosity >= 8 else logging.WARNING)
    # Never below WARNING: at DEBUG httpcore logs every response's headers (a
    # server's Set-Cookie with a session token); the XO adapter logs its own
    # requests at TRACE, without headers.
    for quiet in ("httpx", "httpcore"):
        logging.getLogger(quiet).setLevel(logging.WARNING)
