"""TLS: verified by default, a private CA through caFile, ``insecure`` to opt out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from domain.errors import InventoryError
from entrypoints.testkits.fake_xo import FakeXOServer
from tests.xo.pki import ThrowawayPKI, make_pki
from tests.xo.support import TOKEN, RecordingObserver, make_inventory


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ThrowawayPKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
async def tls_xo(pki: ThrowawayPKI) -> AsyncIterator[FakeXOServer]:
    async with FakeXOServer(token=TOKEN, ssl_context=pki.server_context()) as server:
        server.state.add_pool(name_label="p")
        yield server


@pytest.mark.parametrize(
    ("ca", "insecure"),
    [
        pytest.param("test-ca", False, id="ca-file-verified"),
        pytest.param(None, True, id="insecure-skips-verification"),
        pytest.param("other-ca", True, id="insecure-ignores-ca-file"),
    ],
)
async def test_xo_over_https_is_accepted(
    tls_xo: FakeXOServer, pki: ThrowawayPKI, ca: str | None, insecure: bool
) -> None:
    ca_file = {"test-ca": pki.ca_cert, "other-ca": pki.other_ca_cert}.get(ca or "")

    async with make_inventory(tls_xo, ca_file=ca_file, insecure=insecure) as inv:
        await inv.check()

    assert tls_xo.url.startswith("https://")
    assert tls_xo.requests.snapshot() == {"GET /vms": 1}


@pytest.mark.parametrize(
    "ca",
    [
        pytest.param("other-ca", id="wrong-ca-file"),
        pytest.param(None, id="system-cas-do-not-know-a-private-ca"),
    ],
)
async def test_an_unverifiable_certificate_is_refused_at_once(
    tls_xo: FakeXOServer, pki: ThrowawayPKI, ca: str | None
) -> None:
    observer = RecordingObserver()
    ca_file = pki.other_ca_cert if ca else None

    async with make_inventory(tls_xo, ca_file=ca_file, observer=observer) as inv:
        with pytest.raises(InventoryError, match="TLS") as caught:
            await inv.check()

    assert "caFile" in str(caught.value)
    assert observer.calls == [("GET /vms", "tls")]  # not retried: a retry cannot fix it
    assert tls_xo.requests.snapshot() == {}


async def test_an_unreadable_ca_file_is_a_configuration_error(
    tls_xo: FakeXOServer, tmp_path: Path
) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate")

    with pytest.raises(InventoryError, match="caFile"):
        make_inventory(tls_xo, ca_file=bogus)
