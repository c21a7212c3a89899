"""A fake Xen Orchestra REST API server, faithful to ``xo-rest-api.md``.

Objects come from XO's own samples; collections honour ``fields``,
``filter`` (complex-matcher), ``limit`` and ``ndjson``; auth, error bodies,
server-sent events and the pool-disconnect behaviour are XO's. A control
API (``/_control``) and Python methods drive the world and inject faults.

- ``server``: :class:`FakeXOServer` (start/stop in a running loop; composes the parts);
- ``state``: the world and its invariants; ``objects``: objects from the samples;
- ``api``: the REST routes; ``events``: SSE connections and subscriptions;
- ``matcher``: the filter language; ``faults``: faults, their injection, authentication;
- ``counter``: requests per endpoint; ``parts``: what the routes are built from;
- ``samples`` (+ ``sample_objects/*.json``): XO's own objects;
- ``control``: the ``/_control`` routes; ``client``: an HTTP client for them;
- ``cli``: the ``fake-xo`` sub-command (``main``), flags and all.
"""

from entrypoints.testkits.fake_xo.client import FakeXOControlClient, FakeXOControlError
from entrypoints.testkits.fake_xo.faults import Faults
from entrypoints.testkits.fake_xo.matcher import FilterSyntaxError, parse_filter
from entrypoints.testkits.fake_xo.server import FakeXOServer
from entrypoints.testkits.fake_xo.state import FakeXOState, StateError

__all__ = [
    "FakeXOControlClient",
    "FakeXOControlError",
    "FakeXOServer",
    "FakeXOState",
    "Faults",
    "FilterSyntaxError",
    "StateError",
    "parse_filter",
]
