"""The Node cache's rules on what it may take and what it may forget, on versions
the real kube-apiserver never sends (resourceVersions are opaque by contract, etcd
revisions in practice): the integration tests hold the rest against the real server."""

from __future__ import annotations

from typing import Any, cast

import pytest

from adapters.kubernetes import KubeClient, KubernetesNodeStore


def _node(uid: str, version: str, name: str = "n") -> dict[str, Any]:
    return {"metadata": {"name": name, "uid": uid, "resourceVersion": version}}


def _store() -> KubernetesNodeStore:
    return KubernetesNodeStore(cast(KubeClient, object()))  # the cache alone: no request


def _uid(store: KubernetesNodeStore) -> str | None:
    node = store._nodes.get("n")
    return None if node is None else node.uid


@pytest.mark.parametrize(
    ("cached", "listed_at", "kept", "comes_back"),
    [
        pytest.param("12", "10", True, True, id="cached-after-the-list"),
        pytest.param("10", "10", False, False, id="at-the-list: proven deleted"),
        pytest.param("8", "10", False, False, id="before-the-list: proven deleted"),
        pytest.param("abc", "10", False, True, id="opaque-cached: no proof"),
        pytest.param("12", "xyz", False, True, id="opaque-list: no proof"),
    ],
)
def test_a_re_list_lacking_a_node_drops_it_and_only_a_proof_refuses_it_for_good(
    cached: str, listed_at: str, kept: bool, comes_back: bool
) -> None:
    """Dropped unless cached after the list; refused later (its uid remembered as
    deleted) only when the versions say it was deleted."""
    store = _store()
    store._on_event("ADDED", _node("u1", cached))
    store.reflector.resource_version = listed_at
    store._replace([])
    assert (_uid(store) == "u1") is kept
    store._on_event("MODIFIED", _node("u1", "20" if cached.isdigit() else "zzz"))
    assert (_uid(store) == "u1") is comes_back


@pytest.mark.parametrize(
    ("first", "second", "cached_uid", "buried"),
    [
        pytest.param(("u1", "5"), ("u2", "9"), "u2", "u1", id="newer-uid-replaces-and-buries"),
        pytest.param(("u2", "9"), ("u1", "5"), "u2", "u1", id="older-uid-refused-and-buried"),
        pytest.param(("u1", "a"), ("u2", "b"), "u2", None, id="opaque-replaces-buries-nothing"),
    ],
)
def test_two_uids_of_one_name_the_older_revision_is_the_deleted_one(
    first: tuple[str, str], second: tuple[str, str], cached_uid: str, buried: str | None
) -> None:
    store = _store()
    store._written(_node(*first))
    store._written(_node(*second))
    assert _uid(store) == cached_uid
    assert set(store._gone) == ({buried} if buried else set())


def test_the_deleted_uids_kept_are_bounded() -> None:
    store = _store()
    for i in range(10_000):
        store._on_event("DELETED", _node(f"u{i}", str(i), name=f"n{i}"))
    assert len(store._gone) == 8192 and "u9999" in store._gone and "u0" not in store._gone
