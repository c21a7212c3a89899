"""``doctor`` with a token that ends in a newline (issue 13, case 3): the token is
used stripped, and no form of it (escaped ``tok\\n`` included) is ever printed."""

from __future__ import annotations

import json

import pytest

from adapters.logging_setup import secret_forms
from tests.xo.support import TOKEN

from .support import Cluster

pytestmark = pytest.mark.integration

REVOKED = "revoked-t0ken-newline-77"


def assert_never_shown(secret: str, *texts: str) -> None:
    for text in texts:
        for form in secret_forms(secret):
            assert form not in text, f"{form!r} shown in:\n{text}"


async def test_a_token_with_a_trailing_newline_is_used_stripped(cluster: Cluster) -> None:
    outcome = await cluster.doctor(config=cluster.config(token=f"{TOKEN}\n"))

    outcome.expect("ok", "xo.token", cluster.xo.url, "accepts the token")
    assert_never_shown(TOKEN, outcome.table, json.dumps(outcome.document))


async def test_a_refused_token_with_a_newline_is_named_and_never_shown(cluster: Cluster) -> None:
    outcome = await cluster.doctor(config=cluster.config(token=f"{REVOKED}\n"))

    assert outcome.code == 1
    outcome.expect("fail", "xo.token", cluster.xo.url, "401 invalid credentials", fix="admin")
    assert_never_shown(REVOKED, outcome.table, json.dumps(outcome.document))


async def test_a_control_character_inside_the_token_is_a_config_error_naming_the_key(
    cluster: Cluster,
) -> None:
    outcome = await cluster.doctor(config=cluster.config(token=f"{REVOKED[:8]}\n{REVOKED[8:]}"))

    assert outcome.code == 1, outcome.table
    outcome.expect("fail", "config", "cloud config", "token: contains a control character")
    assert REVOKED[:8] not in outcome.table and REVOKED[8:] not in outcome.table
