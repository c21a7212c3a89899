"""XO objects as the REST API returns them, from ``xo-api-samples/`` (XO's OpenAPI examples).

The JSON files in ``sample_objects/`` are package data: the fake server
deep-copies these and rewrites ids, so its objects carry every field a real XO
sends, with real nesting and value formats: a client that only works against
hand-written minimal objects would break on the real thing. ``href`` is
dropped (lists add it back); the pool's ``xo:clientInfo:*`` entries
(kilobytes of browser telemetry) are left out.

- ``VM_HALTED`` (``vm.json``): a halted VM (``$container`` is its pool, no addresses);
- ``VM_RUNNING`` (``vm-running.json``): the same VM running (``$container`` is its host);
- ``HOST`` (``host.json``);
- ``POOL`` (``pool.json``; its ids are inconsistent with the others upstream: rewritten).

The files follow the upstream samples, except where those break XO's own
OpenAPI spec (``tests/spec`` holds them to ``Unbrand_XoVm_``, ``Unbrand_XoHost_``
and ``Unbrand_XoPool_``): the halted VM has the required ``isNestedVirtEnabled``
and ``vulnerabilities``, the running VM's guest tools are ``xentools`` with a
string ``version`` (upstream: ``xenTools``, a number), the pool has the required
``haRebootVmOnInternalShutdown``.
Nothing here is mutated: callers deep-copy what they change.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any


def _load(name: str) -> dict[str, Any]:
    text = resources.files(str(__package__)).joinpath("sample_objects", name).read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


VM_HALTED = _load("vm-halted.json")
VM_RUNNING = _load("vm-running.json")
HOST = _load("host.json")
POOL = _load("pool.json")
