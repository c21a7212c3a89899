"""Turning arbitrary XO names into valid Kubernetes label values."""

from __future__ import annotations

import re

MAX_LABEL_VALUE = 63
_INVALID = re.compile(r"[^A-Za-z0-9_.-]")
_EDGE_JUNK = re.compile(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$")
#: A value that is valid already (the usual name or uuid): returned as it is.
_VALID = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)?")


def sanitize_label_value(value: str) -> str:
    """A valid label value as close to ``value`` as possible.

    Characters other than ASCII letters, digits, ``-``, ``_`` and ``.`` become
    ``-`` (the API server accepts ASCII only, whatever unicode calls a letter),
    leading and trailing non-alphanumerics are trimmed, and the result is cut to
    63 characters and trimmed again so the cut never ends on ``-``.
    """
    if _VALID.fullmatch(value):
        return value
    out = _EDGE_JUNK.sub("", _INVALID.sub("-", value))
    return _EDGE_JUNK.sub("", out[:MAX_LABEL_VALUE])
