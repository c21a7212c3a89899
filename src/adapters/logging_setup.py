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
#: ``_secrets`` longest first (an escaped form contains the plain one): sorted once
#: per registered secret, not once per record.
_masking_order: tuple[str, ...] = ()
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
    global _masking_order
    if value:
        _secrets.update(secret_forms(value))
        _masking_order = tuple(sorted(_secrets, key=len, reverse=True))


def mask_secrets(text: str) -> str:
    for secret in _masking_order:
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


#: stdlib level names loguru knows by the same name (others are sent as numbers).
_LOGURU_LEVELS = frozenset({"TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"})
#: The caller of ``Logger.info`` is six frames above ``emit``; of ``Logger.exception``
#: or the module's ``logging.info``, more: the frames of the logging module are skipped.
_CALLER_DEPTH = 6
_FROM_STDLIB = logger.opt(depth=_CALLER_DEPTH)
_LOGGING_MODULE = logging.__file__


class _InterceptHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        name = record.levelname
        level: str | int = name if name in _LOGURU_LEVELS else record.levelno
        depth, frame = _CALLER_DEPTH, sys._getframe(_CALLER_DEPTH)
        while frame.f_back is not None and frame.f_code.co_filename == _LOGGING_MODULE:
            depth, frame = depth + 1, frame.f_back
        if depth == _CALLER_DEPTH and record.exc_info is None:
            sender = _FROM_STDLIB
        else:
            sender = logger.opt(depth=depth, exception=record.exc_info)
        sender.log(level, record.getMessage())


#: One template for every line: loguru parses a format function's template once and
#: keeps the last 64, so a template holding the time itself (new every millisecond)
#: was parsed again for nearly every line, 27 us of a 69 us line at one line per ms.
_LINE_TEMPLATE = "{_stamp} {level: <7} {name}: {message}\n{exception}"


def _line_format(record: Any) -> str:
    """``{time:YYYY-MM-DDTHH:mm:ss.SSSZ} {level: <7} {name}: {message}``, the same
    characters, with the time written by ``datetime.isoformat`` (C) instead of
    loguru's token formatter (a fifth of a line's cost), into a field of the record
    that only this template reads (loguru's JSON lists its own fields)."""
    record["_stamp"] = record["time"].isoformat(timespec="milliseconds")
    return _LINE_TEMPLATE


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
        format=_line_format,
    )
    # The intercept hands each record to loguru, which finds the caller itself
    # (``depth``) and stamps thread and process: the standard module's own search of
    # the stack and those fields are work nobody reads (the logging HOWTO's
    # "Optimization" switches), a sixth of a stdlib line's cost.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
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
