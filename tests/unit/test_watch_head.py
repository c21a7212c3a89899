"""Reading a Node's MODIFIED event head without decoding it: only the API server's
own spelling is read, anything else is left to the JSON decoder."""

from __future__ import annotations

import pytest

from adapters.kubernetes.watch import modified_node_head

UID = "143e5fca-ba7e-4094-87b4-0170c0c58fdf"
#: as kube-apiserver v1.36 writes it (recorded from the test control plane)
HEAD = (
    b'{"type":"MODIFIED","object":{"kind":"Node","apiVersion":"v1","metadata":'
    b'{"name":"pk-1","uid":"' + UID.encode() + b'","resourceVersion":"201",'
    b'"creationTimestamp":"2026-12-06T17:07:15Z","labels":{"a":"b"}}}}'
)


def test_the_api_servers_spelling_is_read() -> None:
    assert modified_node_head(HEAD) == ("pk-1", UID, "201")


@pytest.mark.parametrize(
    "line",
    [
        HEAD.replace(b'"MODIFIED"', b'"ADDED"'),
        HEAD.replace(b'"MODIFIED"', b'"DELETED"'),
        HEAD.replace(b'"kind":"Node"', b'"kind":"ConfigMap"'),
        HEAD.replace(b'{"type"', b'{ "type"'),  # another encoder's spacing
        HEAD.replace(b'"name":"pk-1","uid"', b'"uid"'),  # fields in another order
        HEAD.replace(b'"pk-1"', b'"pk\\u002d1"'),  # an escaped name
        HEAD.replace(b'"pk-1"', b'"PK-1"'),  # not a DNS subdomain
        HEAD.replace(b'"201"', b'"20a"'),  # not an etcd revision
        HEAD.replace(b'"201"', b"201"),
        b'{"type":"BOOKMARK","object":{"kind":"Node","apiVersion":"v1","metadata":'
        b'{"resourceVersion":"9"}}}',
        b"",
    ],
)
def test_any_other_spelling_is_not_read(line: bytes) -> None:
    assert modified_node_head(line) is None
