"""The console script with a token that ends in a newline, and XO answers it cannot
decode, against the fake XO over HTTP and the real kube-apiserver (issue 13,
cases 3 and 6).

A token saved with a trailing newline (``echo tok | base64``) once went into
the Cookie header as is: the HTTP library refused the header and its error
quoted it, escaped (``tok\\n``), which the log masking did not know, so the
token reached the ERROR log, stderr and the ``FailedToCheckClient`` Event.
Undecodable answers at startup printed a traceback instead of one line.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from adapters.kubernetes import KubeClient
from adapters.logging_setup import secret_forms
from entrypoints.testkits.fake_xo import FakeXOServer

from .conftest import StartCCM
from .e2e_support import TOKEN
from .kube import unique

pytestmark = pytest.mark.integration

POD_NAMESPACE = "kube-system"
REVOKED = "e2e-revoked-t0ken-9f1c"


@pytest.fixture
async def xo_server() -> AsyncIterator[FakeXOServer]:
    async with FakeXOServer() as server:
        yield server


def pod_env() -> dict[str, str]:
    return {
        "POD_NAME": unique("xoccm-secrets-pod"),
        "POD_NAMESPACE": POD_NAMESPACE,
        "POD_UID": str(uuid.uuid4()),
    }


def assert_never_shown(secret: str, *texts: str) -> None:
    for text in texts:
        for form in secret_forms(secret):
            assert form not in text, f"{form!r} shown in:\n{text[-2000:]}"


async def check_client_notes(kube: KubeClient, pod: str) -> list[str]:
    answer = await kube.request("GET", f"/apis/events.k8s.io/v1/namespaces/{POD_NAMESPACE}/events")
    items: list[dict[str, Any]] = answer.get("items") or []
    return [
        str(e.get("note") or "")
        for e in items
        if e.get("reason") == "FailedToCheckClient"
        and (e.get("regarding") or {}).get("name") == pod
    ]


async def test_a_token_with_a_trailing_newline_works_and_is_never_shown_at_v10(
    xo_server: FakeXOServer, start_ccm: StartCCM
) -> None:
    ccm = await start_ccm(xo_server.url, token=f'"{TOKEN}\\n"', flags=["--v=10"])

    await ccm.stop()
    assert "Xen Orchestra answers" in ccm.log
    assert_never_shown(TOKEN, ccm.log)
    assert "set-cookie" not in ccm.log.lower()


async def test_a_refused_token_with_a_newline_never_reaches_the_event_or_stderr(
    xo_server: FakeXOServer,
    kube: KubeClient,
    start_ccm: StartCCM,
) -> None:
    env = pod_env()
    ccm = await start_ccm(
        xo_server.url, token=f'"{REVOKED}\\n"', env=env, flags=["--v=10"], ready=False
    )

    assert await ccm.wait(within=30) == 1
    assert "cannot use Xen Orchestra" in ccm.log
    notes = await check_client_notes(kube, env["POD_NAME"])
    assert len(notes) == 1 and "401" in notes[0], notes
    assert_never_shown(REVOKED, ccm.log, *notes)


@pytest.mark.parametrize("garbage", ["bad-encoding", "deep"])
async def test_an_undecodable_answer_at_startup_is_one_line_not_a_traceback(
    xo_server: FakeXOServer,
    start_ccm: StartCCM,
    garbage: str,
) -> None:
    xo_server.faults.set(garbage=garbage)
    ccm = await start_ccm(xo_server.url, ready=False)

    assert await ccm.wait(within=30) == 1
    errors = [line for line in ccm.log.splitlines() if "error: cannot use Xen Orchestra" in line]
    assert len(errors) == 1 and "GET /vms" in errors[0], ccm.log[-3000:]
    assert "Traceback" not in ccm.log
