"""Hypothesis strategies for what XO and the API server may send.

JSON documents are built as trees whose leaves may be :class:`Raw` tokens, put
into the text verbatim: numbers no float holds (``1e400``), ``NaN`` and
``Infinity`` (which Python's parser accepts), integers past the parser's digit
limit, and strings holding bytes that are not UTF-8. :func:`render` turns a
tree into the bytes a server would send.

Objects are XO-shaped (the fields the adapter reads, each either of the right
type or of any other), so examples reach the parser's every branch instead of
failing at the first check.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st


@dataclass(frozen=True)
class Raw:
    """A token written into the JSON text as is."""

    token: bytes


RAW_TOKENS = (
    b"1e400",
    b"-1e400",
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b"1" * 5000,  # past the int parser's 4300-digit limit
    b"1e-400",
    b"-0",
    b'"\xc3\x28"',  # invalid UTF-8 inside a string
    b'"\xff\xfe"',
    b'"\\ud800"',  # a lone surrogate, escaped
)

UUIDS = st.uuids().map(str)
TEXT = st.text(max_size=12)
scalars: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
    st.sampled_from(RAW_TOKENS).map(Raw),
)
json_trees: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=10,
)


def odd(right: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A field's value: mostly of the right type, else anything at all."""
    return st.one_of(right, right, json_trees)


def _obj(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """An object with each field present or not (the id more often than not)."""
    return st.fixed_dictionaries({}, optional=fields)


POWER_STATES = st.sampled_from(["Running", "Halted", "Paused", "Suspended", "running", ""])
vm_objects = _obj(
    {
        "id": odd(UUIDS),
        "name_label": odd(TEXT),
        "power_state": odd(POWER_STATES),
        "$pool": odd(UUIDS),
        "$container": odd(UUIDS),
        "CPUs": odd(_obj({"max": odd(st.integers(0, 64)), "number": odd(st.integers(0, 64))})),
        "memory": odd(_obj({"size": odd(st.integers(0, 2**40))})),
        "mainIpAddress": odd(st.ip_addresses().map(str)),
        "addresses": odd(st.dictionaries(TEXT, st.ip_addresses().map(str), max_size=3)),
        "tags": odd(st.lists(TEXT, max_size=3)),
    }
)
host_objects = _obj({"id": odd(UUIDS), "name_label": odd(TEXT), "$pool": odd(UUIDS)})
pool_objects = _obj({"id": odd(UUIDS), "name_label": odd(TEXT)})
xo_objects = st.one_of(vm_objects, host_objects, pool_objects)
documents: st.SearchStrategy[Any] = st.one_of(
    xo_objects,
    st.lists(xo_objects, max_size=4),
    st.lists(st.one_of(xo_objects, json_trees), max_size=4),
    json_trees,
)


def render(tree: Any) -> bytes:
    """The JSON text of ``tree``, :class:`Raw` leaves verbatim."""
    if isinstance(tree, Raw):
        return tree.token
    if isinstance(tree, dict):
        items = (json.dumps(str(k)).encode() + b": " + render(v) for k, v in tree.items())
        return b"{" + b", ".join(items) + b"}"
    if isinstance(tree, list):
        return b"[" + b", ".join(render(v) for v in tree) + b"]"
    return json.dumps(tree).encode()


#: Nesting no recursive parser survives, and some it does.
DEPTHS = (10, 900, 2_000, 100_000)
deep_bodies = st.builds(
    lambda depth, opener: (opener * depth) + (b"]" if opener == b"[" else b"") * depth,
    st.sampled_from(DEPTHS),
    st.sampled_from([b"[", b'{"a": ']),
)
bodies = st.one_of(
    documents.map(render),
    documents.map(render).flatmap(lambda b: st.integers(0, len(b)).map(lambda n: b[:n])),
    deep_bodies,
    st.binary(max_size=64),
    st.just(b""),
)

CONTENT_TYPES = st.sampled_from(
    ["application/json", "application/json; charset=latin-1", "text/html", "", "*/*"]
)
#: Encodings the body does not have (httpx decodes gzip, deflate; ignores the rest).
CONTENT_ENCODINGS = st.sampled_from(
    ["", "", "gzip", "deflate", "br", "zstd", "bogus", "gzip, gzip"]
)
STATUSES = st.sampled_from([200, 200, 200, 200, 201, 203, 204, 206, 400, 401, 403, 404, 429, 500])


@st.composite
def answers(draw: st.DrawFn, *, statuses: st.SearchStrategy[int] = STATUSES) -> Any:
    """A :class:`tests.fuzz.canned.Canned` answer: status, headers and body at odds."""
    from tests.fuzz.canned import Canned

    body = draw(bodies)
    headers = []
    ctype = draw(CONTENT_TYPES)
    if ctype:
        headers.append(("Content-Type", ctype))
    encoding = draw(CONTENT_ENCODINGS)
    if encoding == "gzip" and draw(st.booleans()):
        body = gzip.compress(body)  # the real thing, sometimes: decoding must work too
    if encoding:
        headers.append(("Content-Encoding", encoding))
    return Canned(status=draw(statuses), headers=tuple(headers), body=body)


# -- server-sent events ----------------------------------------------------------
EVENT_NAMES = st.sampled_from(["add", "update", "remove", "ping", "init", "", "ADD", "päng"])
SUBSCRIPTIONS = st.sampled_from(["VM", "host", "pool", "vm", "SR", ""])


@st.composite
def frame_data(draw: st.DrawFn) -> bytes:
    """A frame's data: an XO object tagged with its subscription, or anything."""
    choice = draw(st.integers(0, 3))
    if choice == 0:
        obj = draw(xo_objects)
        obj["$subscription"] = draw(odd(SUBSCRIPTIONS))
        return render(obj)
    if choice == 1:
        return draw(deep_bodies)
    if choice == 2:
        return draw(documents.map(render))
    return draw(st.binary(max_size=40))


@st.composite
def sse_frames(draw: st.DrawFn) -> bytes:
    """One frame as bytes on the wire: fields, comments, odd line ends, no blank line."""
    lines = []
    if draw(st.booleans()):
        lines.append(b"event: " + draw(EVENT_NAMES).encode())
    data = draw(frame_data())
    for part in data.split(b"\n") if draw(st.booleans()) else [data.replace(b"\n", b" ")]:
        lines.append(b"data: " + part)
    extra = draw(
        st.lists(
            st.sampled_from([b": a comment", b"id: 7", b"retry: x", b"retry: 99999999999", b"x"]),
            max_size=2,
        )
    )
    lines += extra
    end = draw(st.sampled_from([b"\n", b"\r\n", b"\r"]))
    return end.join(lines) + end + draw(st.sampled_from([end, end, b""]))


# -- Kubernetes Nodes ----------------------------------------------------------
LABEL_VALUES = st.from_regex(r"\A(([A-Za-z0-9][-A-Za-z0-9_.]{0,20})?[A-Za-z0-9])?\Z")


@dataclass(frozen=True)
class Fleet:
    """The XO side the Node fuzz runs against: what exists, what does not."""

    known_pools: tuple[str, ...] = (
        "8a3c1e54-7f0b-4c8e-9d21-0b6f3a9e2c11",
        "b7569d99-30f8-178a-7d94-801de3e29b5b",
    )
    unknown_pool: str = "d00df00d-0000-4000-8000-000000000003"
    #: (VM id, pool index, running)
    vms: tuple[tuple[str, int, bool], ...] = (
        ("f07ab729-c0e8-721c-45ec-f11276377030", 0, True),
        ("0e1d2c3b-4a59-4687-9786-a5b4c3d2e1f0", 1, False),
    )
    deleted_vm: str = "dead0000-1111-4222-8333-444455556666"

    @property
    def vm_ids(self) -> tuple[str, ...]:
        return tuple(v for v, _, _ in self.vms)


FLEET = Fleet()
ANY_UUID_TEXT = st.one_of(
    st.sampled_from([*FLEET.known_pools, FLEET.unknown_pool, *FLEET.vm_ids, FLEET.deleted_vm, ""]),
    st.sampled_from([*FLEET.known_pools, *FLEET.vm_ids]).map(str.upper),
    st.sampled_from(FLEET.known_pools).map(lambda p: f" {p} "),
    UUIDS,
    TEXT,
)
PROVIDER_IDS = st.one_of(
    st.builds(lambda p, v: f"xenorchestra://{p}/{v}", ANY_UUID_TEXT, ANY_UUID_TEXT),
    st.sampled_from(
        ["", "aws:///i-0abc", "xenorchestra://", "xenorchestra:///", "xenorchestra://a/b/c"]
    ),
    TEXT,
)
#: The labels the deletion rule reads (pools) or the CCM writes, plus an operator's.
POOL_LABEL_KEYS = (
    "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/region",
    "topology.k8s.xenorchestra/pool_id",
    "topology.k8s.xenorchestra/original_pool_id",
)
OTHER_LABEL_KEYS = (
    "topology.kubernetes.io/zone",
    "node.kubernetes.io/instance-type",
    "topology.k8s.xenorchestra/host_id",
    "team.example/owner",
)
TAINT_KEYS = st.sampled_from(
    [
        "node.cloudprovider.kubernetes.io/uninitialized",
        "node.cloudprovider.kubernetes.io/shutdown",
        "node.kubernetes.io/out-of-service",
        "example.com/other",
    ]
)


_VALID_LABEL = re.compile(r"\A(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?\Z")


def _as_label_value(text: str) -> str:
    """``text`` made a value the API server accepts on a label: the characters a label
    may hold, at most 63, starting and ending alphanumeric (or empty). Mapped, not
    filtered: free text rarely is a label value, and filtering it away made hypothesis
    give up (FailedHealthCheck filter_too_much) on a loaded machine."""
    value = re.sub(r"[^-A-Za-z0-9_.]", "", text)[:63].strip("-_.")
    assert _VALID_LABEL.match(value), value
    return value


def _label_value(pools: bool) -> st.SearchStrategy[str]:
    """A value the API server accepts on a label (the uuids the fleet knows, often)."""
    values = ANY_UUID_TEXT if pools else TEXT
    return st.one_of(LABEL_VALUES, values.map(_as_label_value))


@st.composite
def node_objects(draw: st.DrawFn, name: str) -> dict[str, Any]:
    """A v1 Node as the API server may hold it: types as its schema says, values anything
    it accepts (annotations, providerID and condition strings are free text)."""
    labels = draw(
        st.fixed_dictionaries(
            {},
            optional={
                **{k: _label_value(True) for k in POOL_LABEL_KEYS},
                **{k: _label_value(False) for k in OTHER_LABEL_KEYS},
            },
        )
    )
    taints = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "key": TAINT_KEYS,
                    "effect": st.sampled_from(["NoSchedule", "NoExecute", "PreferNoSchedule"]),
                },
                optional={
                    "value": TEXT,
                    "timeAdded": st.sampled_from(["2026-01-01T00:00:00Z", "x"]),
                },
            ),
            max_size=3,
            unique_by=lambda t: (t["key"], t["effect"]),
        )
    )
    ready = st.sampled_from(["True", "False", "Unknown", "", "yes"])
    conditions = draw(
        st.lists(
            st.fixed_dictionaries(
                {"type": st.sampled_from(["Ready", "MemoryPressure"]), "status": ready}
            ),
            max_size=2,
        )
    )
    addresses = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "type": st.sampled_from(
                        ["InternalIP", "ExternalIP", "Hostname", "InternalDNS", "Odd"]
                    ),
                    "address": st.one_of(st.ip_addresses().map(str), TEXT),
                }
            ),
            max_size=3,
        )
    )
    annotations = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "alpha.kubernetes.io/provided-node-ip": st.one_of(
                    st.ip_addresses().map(str), TEXT, st.just("10.0.0.1,fd00::1")
                ),
                "example.com/note": TEXT,
            },
        )
    )
    spec: dict[str, Any] = {"taints": taints}
    provider_id = draw(PROVIDER_IDS)
    if provider_id:
        spec["providerID"] = provider_id
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "uid": draw(UUIDS),
            "resourceVersion": "1",
            "labels": labels,
            "annotations": annotations,
            "creationTimestamp": draw(st.sampled_from(["2026-01-01T00:00:00Z", None])),
        },
        "spec": spec,
        "status": {
            "conditions": conditions,
            "addresses": addresses,
            "nodeInfo": {"systemUUID": draw(ANY_UUID_TEXT)},
        },
    }


fleets_of_nodes = st.integers(1, 4).flatmap(
    lambda n: st.tuples(*(node_objects(f"node-{i}") for i in range(n)))
)
