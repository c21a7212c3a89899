"""How a request leaves KubeClient (aiohttp, from the loop): answers decoded and 5xx
retried, tokens trimmed, credentials read again after a 401 or once their time is
up, large answers decoded off the loop, the configuration it cannot follow refused
at load, TLS from a kubeconfig."""

from __future__ import annotations

import asyncio
import ssl
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from kubernetes import client as k8s

from adapters.kubernetes import ApiError, ApiUnavailableError, ClientSettings, KubeClient, connect
from adapters.kubernetes import client as client_module
from adapters.kubernetes import transport as transport_module
from adapters.kubernetes.configuration import ApiConfig, api_config
from adapters.kubernetes.errors import KubeConfigError

from .controlplane import free_port
from .stand_in import StandIn
from .test_client import FAST

pytestmark = pytest.mark.integration


@pytest.fixture
def settings() -> ClientSettings:
    return FAST


def client(url: str, settings: ClientSettings, token: str = "") -> KubeClient:
    configuration = k8s.Configuration(host=url)
    if token:
        configuration.api_key = {"authorization": f"Bearer {token}"}
    return KubeClient(api_config(configuration), settings, name="test")


async def test_an_answer_is_decoded_and_5xx_retried(
    stand_in: StandIn, settings: ClientSettings
) -> None:
    stand_in.answers = [(503, {}), (200, {})]
    async with client(stand_in.url, settings, token="t0k3n") as kube:
        answer = await kube.request("GET", "/api/v1/nodes", query=[("limit", "5")])
    assert answer["kind"] == "NodeList"
    assert stand_in.authorization == ["Bearer t0k3n", "Bearer t0k3n"]
    assert kube.requests["GET"] == 2


async def test_a_token_ending_in_a_newline_is_trimmed_and_one_inside_refused(
    stand_in: StandIn, settings: ClientSettings
) -> None:
    async with client(stand_in.url, settings, token="tr41l1ng\n") as kube:
        await kube.request("GET", "/api/v1/nodes")
    assert stand_in.authorization == ["Bearer tr41l1ng"]
    async with client(stand_in.url, settings, token="1ns\nid3") as kube:
        with pytest.raises(ApiUnavailableError) as failure:
            await kube.request("GET", "/api/v1/nodes")
    assert "control character" in str(failure.value)
    assert "1ns" not in str(failure.value) and "id3" not in str(failure.value)
    assert stand_in.authorization == ["Bearer tr41l1ng"], "nothing else was sent"


async def test_no_server_is_an_unavailable_error_in_one_line(settings: ClientSettings) -> None:
    async with client(f"http://127.0.0.1:{free_port()}", settings) as kube:
        with pytest.raises(ApiUnavailableError) as failure:
            await kube.request("GET", "/api/v1/nodes")
    assert failure.value.status == 0 and "\n" not in str(failure.value)


async def test_a_slow_answer_times_out_as_unavailable(
    stand_in: StandIn, settings: ClientSettings
) -> None:
    stand_in.delay = 2.0
    async with client(stand_in.url, settings) as kube:
        with pytest.raises(ApiUnavailableError):
            await kube.request("GET", "/api/v1/nodes", request_timeout=(1.0, 0.3))


async def test_requests_in_flight_are_bounded_by_the_workers(
    stand_in: StandIn, settings: ClientSettings
) -> None:
    stand_in.delay = 0.2
    async with client(stand_in.url, replace(settings, workers=3)) as kube:
        await asyncio.gather(*(kube.request("GET", "/api/v1/nodes") for _ in range(7)))
    assert stand_in.max_in_flight == 3


# -- the loop transport only ------------------------------------------------------
async def test_a_401_reads_the_credentials_again(stand_in: StandIn) -> None:
    """A rotated service account token: the refresh hook gives the new one, and the
    refused request is sent once more with it (a 401 applied nothing)."""
    tokens = iter(["old-t0k3n", "new-t0k3n"])
    configuration = k8s.Configuration(host=stand_in.url)
    configuration.api_key = {"authorization": "Bearer old-t0k3n"}

    def refresh(conf: k8s.Configuration) -> None:
        conf.api_key = {"authorization": f"Bearer {next(tokens, 'new-t0k3n')}"}

    configuration.refresh_api_key_hook = refresh
    stand_in.answers = [(200, {}), (401, {}), (200, {}), (401, {}), (200, {})]
    async with KubeClient(api_config(configuration), FAST, name="test") as kube:
        await kube.request("GET", "/api/v1/nodes")
        await kube.request("GET", "/api/v1/nodes")  # 401, then 200 with the new token
        # Credentials that did not change: the 401 is the answer, no second try.
        with pytest.raises(ApiError) as refused:
            await kube.request("GET", "/api/v1/nodes")
        assert refused.value.status == 401
        await kube.request("GET", "/api/v1/nodes")
    assert stand_in.authorization == [
        "Bearer old-t0k3n",
        "Bearer old-t0k3n",
        "Bearer new-t0k3n",
        "Bearer new-t0k3n",
        "Bearer new-t0k3n",
    ]


async def test_credentials_are_read_again_once_their_time_is_up(
    stand_in: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transport_module, "CREDENTIALS_TTL", 0.2)
    reads: list[str] = []
    configuration = k8s.Configuration(host=stand_in.url)
    configuration.api_key = {"authorization": "Bearer t0k3n"}
    configuration.refresh_api_key_hook = lambda conf: reads.append(threading.current_thread().name)
    async with KubeClient(api_config(configuration), FAST, name="test") as kube:
        for _ in range(3):
            await kube.request("GET", "/api/v1/nodes")
        assert len(reads) == 1  # one read serves the requests within the TTL
        await asyncio.sleep(0.3)
        await kube.request("GET", "/api/v1/nodes")
    assert len(reads) == 2
    # the refresh hook may block (a file, an exec plugin): never on the loop
    assert all(name.startswith("test-api") for name in reads), reads


async def test_requests_starting_together_share_one_credentials_read(
    stand_in: StandIn,
) -> None:
    """Ten workers starting at once: one read in a thread serves them all (the
    refresh hook may be an exec plugin; ten of them at start-up is ten processes)."""
    reads: list[str] = []
    configuration = k8s.Configuration(host=stand_in.url)
    configuration.api_key = {"authorization": "Bearer t0k3n"}
    configuration.refresh_api_key_hook = lambda conf: reads.append(threading.current_thread().name)
    settings = replace(FAST, workers=10)
    async with KubeClient(api_config(configuration), settings, name="test") as kube:
        await asyncio.gather(*(kube.request("GET", "/api/v1/nodes") for _ in range(10)))
    assert len(reads) == 1, reads
    assert stand_in.authorization == ["Bearer t0k3n"] * 10


def test_an_unverified_context_loads_no_ca_store() -> None:
    """Nothing is verified with ``verify_ssl`` off: loading the system CA store (about
    1 MiB, tens of milliseconds) would be for nothing."""
    context = transport_module.tls_context(_configuration(verify_ssl=False))
    assert context is not None
    assert context.verify_mode == ssl.CERT_NONE
    assert context.cert_store_stats()["x509_ca"] == 0
    verified = transport_module.tls_context(_configuration())
    assert verified is not None and verified.cert_store_stats()["x509_ca"] > 0  # the system's


async def test_a_large_answer_is_decoded_off_the_loop(
    admin_kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded_in: list[str] = []
    original = client_module._decode

    def spying(data: bytes) -> dict[str, object]:
        decoded_in.append(threading.current_thread().name)
        return original(data)

    monkeypatch.setattr(client_module, "_decode", spying)
    monkeypatch.setattr(client_module, "DECODE_ON_LOOP_MAX", 100)
    kube = await connect(str(admin_kubeconfig), name="big")
    async with kube:
        answer = await kube.request("GET", "/api/v1/namespaces")  # over 100 bytes
        assert answer["kind"] == "NamespaceList"
        monkeypatch.setattr(client_module, "DECODE_ON_LOOP_MAX", 10**9)
        await kube.request("GET", "/api/v1/namespaces")
    assert decoded_in[0].startswith("big-api"), decoded_in
    assert decoded_in[1] == threading.main_thread().name, decoded_in


def _configuration(**fields: object) -> ApiConfig:
    configuration = k8s.Configuration(host="https://10.0.0.1:6443")
    for key, value in fields.items():
        setattr(configuration, key, value)
    return api_config(configuration)


@pytest.mark.parametrize(
    ("fields", "refused"),
    [
        ({}, ""),
        ({"proxy": "http://proxy.example:3128"}, ""),
        ({"proxy": "socks5://proxy.example:1080"}, "SOCKS proxy"),
        ({"proxy": "socks5h://proxy.example:1080", "no_proxy": "10.0.0.0/8"}, ""),
        ({"assert_hostname": "kubernetes"}, "assert_hostname"),
        ({"tls_server_name": "kubernetes"}, ""),
        ({"verify_ssl": False}, ""),
    ],
)
def test_what_the_transport_cannot_follow_is_refused_at_load_in_one_line(
    fields: dict[str, object], refused: str
) -> None:
    if not refused:
        assert _configuration(**fields).host == "https://10.0.0.1:6443"
        return
    with pytest.raises(KubeConfigError, match=refused) as caught:
        _configuration(**fields)
    assert "\n" not in str(caught.value)


async def test_a_kubeconfig_with_a_client_certificate_and_ca_works_from_the_loop(
    admin_kubeconfig: Path,
) -> None:
    """The local control plane's admin: its own CA, a client certificate (TLS both ways)."""
    kube = await connect(str(admin_kubeconfig), name="tls")
    async with kube:
        await kube.request("GET", "/api/v1/namespaces/default")
        assert kube._transport is not None  # the loop transport answered
    loaded = await kube.load()
    insecure = KubeClient(
        replace(loaded, verify=False, ca_file=None, ca_data=None), name="insecure"
    )
    async with insecure:
        await insecure.request("GET", "/api/v1/namespaces/default")
