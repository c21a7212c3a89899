"""Answers and event frames that break a client's decoding in the ways seen in review.

Each mode reproduces one failure that once escaped the XO adapter's error
types: a ``Content-Encoding`` the body does not have (the HTTP library's
decoding error), JSON nested past any parser's recursion limit, numbers
(``1e400``) that overflow once read, fields of the wrong JSON type, and bytes
that are not UTF-8. Applied to REST answers by the API middleware (the
``garbage`` fault) and to VM event frames (``garble_frames``); with ``target``
set, only that object's answer or list entry is spoiled, so "one bad VM
among good ones" can be staged.
"""

from __future__ import annotations

import json
from typing import Any

#: The modes this module implements (the older ones live with the middleware).
MODES: tuple[str, ...] = ("bad-encoding", "deep", "overflow", "wrong-types", "bad-utf8")

DEPTH = 100_000
_HUGE = "__huge_number__"


def _spoil(obj: dict[str, Any], mode: str) -> str:
    """One object's JSON text, spoiled per ``mode`` (an object-level mode)."""
    if mode == "overflow":
        spoiled = dict(obj)
        for key in ("CPUs", "memory"):
            if isinstance(spoiled.get(key), dict):
                spoiled[key] = {k: _HUGE for k in spoiled[key]}
        return json.dumps(spoiled).replace(f'"{_HUGE}"', "1e400")
    if mode == "wrong-types":
        spoiled = dict(obj)
        for key, wrong in (
            ("name_label", 42),
            ("power_state", ["Running"]),
            ("$pool", {"id": obj.get("$pool")}),
            ("tags", "k8s"),
            ("addresses", ["10.0.0.1"]),
            ("CPUs", "2"),
        ):
            if key in spoiled:
                spoiled[key] = wrong
        return json.dumps(spoiled)
    return json.dumps(obj)


def _aimed(obj: Any, target: str | None) -> bool:
    return target is None or (isinstance(obj, dict) and str(obj.get("id", "")).lower() == target)


def _text(data: Any, mode: str, target: str | None) -> str:
    if isinstance(data, list):
        parts = [_spoil(o, mode) if _aimed(o, target) else json.dumps(o) for o in data]
        return "[" + ", ".join(parts) + "]"
    return _spoil(data, mode) if _aimed(data, target) else json.dumps(data)


def _concerns(data: Any, target: str | None) -> bool:
    """Whether the answer is spoiled at all: always without a target (even ``[]``)."""
    items = data if isinstance(data, list) else [data]
    return target is None or any(_aimed(o, target) for o in items)


def garble_body(body: bytes, mode: str, target: str | None) -> tuple[bytes, dict[str, str]] | None:
    """The spoiled body and extra headers for a JSON answer; None: leave it alone
    (``target`` set and the answer is not about that object)."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    target = target.lower() if target else None
    if not _concerns(data, target):
        return None
    if mode == "bad-encoding":
        return body, {"Content-Encoding": "gzip"}
    if mode == "deep":
        return ("[" * DEPTH + "]" * DEPTH).encode(), {}
    if mode == "bad-utf8":
        text = json.dumps(data)
        cut = text.find('"', text.find('"name_label"') + len('"name_label"') + 1) + 1
        if cut <= 0:
            return b'["\xc3\x28"]', {}
        return text[:cut].encode() + b"\xc3\x28" + text[cut:].encode(), {}
    return _text(data, mode, target).encode(), {}


def garble_frame_data(data: Any, mode: str) -> str:
    """The ``data:`` line of a spoiled event frame (SSE is text: no bytes modes)."""
    if mode == "deep":
        return "[" * DEPTH + "]" * DEPTH
    if mode in ("overflow", "wrong-types") and isinstance(data, dict):
        return _spoil(data, mode)
    if mode == "truncated":
        return json.dumps(data)[:20]
    return "<html>not an event</html>"
