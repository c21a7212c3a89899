"""The secure port as a Kubernetes component serves it, on the real kube-apiserver:
HTTPS (self-signed, --cert-dir, given files), TokenReview authentication,
SubjectAccessReview authorization, always-allowed paths, x509 client certificates.

Each port is built as the process builds it: the container's ``health`` Service,
its review clients the container's Resources, all closed by ``shutdown``."""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from adapters.kubernetes import ApiUnavailableError, KubeClient
from adapters.observability.delegated_auth import DelegatedAuth
from adapters.observability.health import HealthServer
from entrypoints.container import Container, provide, shutdown
from entrypoints.flags.settings import Settings, parse_command_line
from entrypoints.serving import SecurePort, SecureServingError

from .controlplane import ControlPlane, free_port
from .kube import apply_object, mint_token, unique
from .pki import CertificateAuthority

pytestmark = pytest.mark.integration

Factory = Callable[..., Awaitable[Path]]


async def always_ready() -> bool:
    return True


@dataclass
class Served:
    """A started secure port and the container that built it."""

    container: Container
    port: SecurePort

    @property
    def server(self) -> HealthServer | None:
        return self.port.server

    @property
    def auth(self) -> DelegatedAuth | None:
        return self.port.auth

    async def stop(self) -> None:
        await shutdown(self.container)


async def serve(settings: Settings) -> Served:
    """The ``health`` Service of the CCM's container (not its Node cache nor XO:
    readiness is always true here); SecureServingError when it cannot be set up."""
    container = Container(settings=settings)
    container.readiness.override(always_ready)
    try:
        return Served(container, await provide(container.health))
    except BaseException:
        await shutdown(container)
        raise


async def start(*argv: str) -> Served:
    return await serve(
        parse_command_line(["--bind-address=127.0.0.1", f"--secure-port={free_port()}", *argv])
    )


@pytest.fixture
async def ports() -> AsyncIterator[list[Served]]:
    started: list[Served] = []
    yield started
    for port in started:
        await port.stop()


def url(port: Served, path: str) -> str:
    assert port.server is not None
    return f"https://127.0.0.1:{port.server.port}{path}"


async def get(
    port: Served,
    path: str,
    *,
    token: str | None = None,
    verify: ssl.SSLContext | bool = False,
    cert: tuple[str, str] | None = None,
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if cert is not None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.load_cert_chain(*cert)
        verify = context
    async with httpx.AsyncClient(verify=verify, timeout=10) as client:
        return await client.get(url(port, path), headers=headers)


@pytest.fixture
async def delegator(service_account: Factory, kube: KubeClient) -> Path:
    """The CCM's identity: allowed to create TokenReviews and SubjectAccessReviews
    (system:auth-delegator) and to read the authentication ConfigMap, as the
    shipped RBAC grants."""
    name = unique("xoccm-delegator")
    path = await service_account(name=name, cluster_role="system:auth-delegator")
    await apply_object(
        kube,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": "kube-system"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "extension-apiserver-authentication-reader",
            },
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": "kube-system"}],
        },
    )
    return path


async def scraper_token(kube: KubeClient, *, allowed: bool) -> str:
    """A ServiceAccount token; with ``allowed``, bound to get on /metrics."""
    name = unique("scraper")
    await apply_object(
        kube,
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": "kube-system"},
        },
    )
    if allowed:
        await apply_object(
            kube,
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": name},
                "rules": [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}],
            },
        )
        await apply_object(
            kube,
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": name},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": name,
                },
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": "kube-system"}],
            },
        )
    return await mint_token(kube, namespace="kube-system", service_account=name)


async def test_metrics_need_a_token_authorized_by_a_subject_access_review(
    ports: list[Served], delegator: Path, kube: KubeClient
) -> None:
    port = await start(
        f"--authentication-kubeconfig={delegator}", f"--authorization-kubeconfig={delegator}"
    )
    ports.append(port)
    anonymous = await get(port, "/metrics")
    assert anonymous.status_code == 403
    assert anonymous.json()["message"] == (
        'forbidden: User "system:anonymous" cannot get path "/metrics"'
    )
    for open_path in ("/healthz", "/livez", "/readyz"):
        assert (await get(port, open_path)).status_code == 200

    allowed = await scraper_token(kube, allowed=True)
    scrape = await get(port, "/metrics", token=allowed)
    assert scrape.status_code == 200
    assert "# TYPE" in scrape.text

    denied = await scraper_token(kube, allowed=False)
    assert (await get(port, "/metrics", token=denied)).status_code == 403
    bogus = await get(port, "/metrics", token="not-a-real-token")
    assert bogus.status_code == 401
    assert bogus.json()["reason"] == "Unauthorized"
    # An unknown path is authorized before it is found: anonymous gets 403, not 404.
    assert (await get(port, "/configz")).status_code == 403
    assert (await get(port, "/configz", token=allowed)).status_code == 403

    # Answers are cached (--authentication-token-webhook-cache-ttl, --authorization-*-ttl).
    assert port.auth is not None
    reviews = (port.auth.token_reviews, port.auth.access_reviews)
    assert (await get(port, "/metrics", token=allowed)).status_code == 200
    assert (port.auth.token_reviews, port.auth.access_reviews) == reviews


async def test_the_review_clients_are_the_containers_and_close_with_it(
    delegator: Path,
) -> None:
    """No hand-made clients: TokenReviews and SubjectAccessReviews go through the
    container's Resources, which shutdown closes (after the server)."""
    port = await start(
        f"--authentication-kubeconfig={delegator}", f"--authorization-kubeconfig={delegator}"
    )
    authn = await provide(port.container.authentication_client)
    authz = await provide(port.container.authorization_client)
    assert authn is not None and authz is not None and authn is not authz
    assert (authn.name, authz.name) == ("delegated-authentication", "delegated-authorization")
    await port.stop()
    assert not port.container.authentication_client.initialized
    assert not port.container.authorization_client.initialized
    for client in (authn, authz):
        with pytest.raises(ApiUnavailableError, match="client closed"):
            await client.request("GET", "/version")


async def test_always_allow_paths_are_honoured_without_any_review(
    ports: list[Served],
) -> None:
    """The Go manifests' --authorization-always-allow-paths=...,/metrics, outside a
    cluster and without review kubeconfigs: /metrics answers anyone."""
    port = await start(
        "--authorization-always-allow-paths=/healthz,/livez,/readyz,/metrics,/debug/*"
    )
    ports.append(port)
    assert (await get(port, "/metrics")).status_code == 200
    assert (await get(port, "/debug/anything")).status_code == 404  # allowed, then not found
    assert (await get(port, "/configz")).status_code == 403
    # No TokenReview client: a token is not looked at (the request is anonymous).
    assert (await get(port, "/metrics", token="whatever")).status_code == 200


async def test_secure_port_zero_serves_nothing() -> None:
    port = await serve(parse_command_line(["--secure-port=0"]))
    assert port.server is None
    await port.stop()


async def served_certificate(port: Served) -> x509.Certificate:
    """The certificate the server presents (read in a thread: the server runs on
    this loop)."""
    assert port.server is not None
    address = ("127.0.0.1", port.server.port)
    pem = await asyncio.to_thread(ssl.get_server_certificate, address)
    return x509.load_pem_x509_certificate(pem.encode())


async def test_a_self_signed_certificate_is_served_like_client_go_makes_it(
    ports: list[Served],
) -> None:
    port = await start()
    ports.append(port)
    cert = await served_certificate(port)
    common_name = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    issuer = cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert str(common_name).startswith("localhost@")
    assert str(issuer).startswith("localhost-ca@")
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == [
        "127.0.0.1"
    ]  # 127.0.0.1 is the bind address too: listed once
    assert (await get(port, "/healthz")).status_code == 200


def test_the_ccm_process_never_loads_cryptography() -> None:
    """``cryptography`` costs a process about 9 MiB for its whole life; the CCM needs it
    once, to generate its certificate: a child process does that."""
    code = (
        "import sys\n"
        "from adapters.observability.secure_serving import ServingOptions, build_ssl_context\n"
        "import entrypoints.app, entrypoints.container, entrypoints.serving\n"
        "context, origin = build_ssl_context(ServingOptions())\n"
        "print(origin, '|', 'cryptography' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "self-signed, in memory | False"


async def test_cert_dir_keeps_the_generated_pair_across_restarts(
    ports: list[Served], tmp_path: Path
) -> None:
    cert_dir = tmp_path / "certs"
    first = await start(f"--cert-dir={cert_dir}")
    ports.append(first)
    crt, key = cert_dir / "cloud-controller-manager.crt", cert_dir / "cloud-controller-manager.key"
    assert crt.exists() and key.exists()
    assert key.stat().st_mode & 0o077 == 0
    # The written chain (certificate + CA) lets a client verify the server.
    trusted = ssl.create_default_context(cafile=str(crt))
    assert (await get(first, "/healthz", verify=trusted)).status_code == 200
    await first.stop()
    ports.remove(first)
    second = await start(f"--cert-dir={cert_dir}")
    ports.append(second)
    assert (await served_certificate(second)).serial_number == served_certificate_serial(crt)


def served_certificate_serial(path: Path) -> int:
    return x509.load_pem_x509_certificate(path.read_bytes()).serial_number


async def test_given_certificate_files_are_served(ports: list[Served], tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path, common_name="operator-ca")
    pair = ca.issue("serving", common_name="ccm.example", hosts=("127.0.0.1",), server=True)
    port = await start(f"--tls-cert-file={pair.cert}", f"--tls-private-key-file={pair.key}")
    ports.append(port)
    trusted = ssl.create_default_context(cafile=str(ca.cert))
    assert (await get(port, "/healthz", verify=trusted)).status_code == 200


async def test_client_certificates_from_client_ca_file(
    ports: list[Served], tmp_path: Path, delegator: Path, kube: KubeClient
) -> None:
    """x509 authentication: CN is the user, O the groups; system:masters is always
    allowed, another user goes through a SubjectAccessReview."""
    ca = CertificateAuthority(tmp_path, common_name="scrapers-ca")
    master = ca.issue("master", common_name="prometheus", organizations=("system:masters",))
    nobody = ca.issue("nobody", common_name=unique("nobody"))
    port = await start(
        f"--client-ca-file={ca.cert}",
        f"--authentication-kubeconfig={delegator}",
        f"--authorization-kubeconfig={delegator}",
    )
    ports.append(port)
    ok = await get(port, "/metrics", cert=(str(master.cert), str(master.key)))
    assert ok.status_code == 200
    denied = await get(port, "/metrics", cert=(str(nobody.cert), str(nobody.key)))
    assert denied.status_code == 403
    assert "nobody-" in denied.json()["message"]
    assert (await get(port, "/metrics")).status_code == 403


async def test_client_ca_is_looked_up_in_the_cluster(
    ports: list[Served], delegator: Path, control_plane: ControlPlane
) -> None:
    """Without --client-ca-file, the CA of extension-apiserver-authentication is used:
    the cluster admin's certificate (system:masters) is accepted."""
    port = await start(
        f"--authentication-kubeconfig={delegator}", f"--authorization-kubeconfig={delegator}"
    )
    ports.append(port)
    admin = control_plane.admin_cert
    assert admin is not None
    assert (await get(port, "/metrics", cert=(str(admin.cert), str(admin.key)))).status_code == 200


async def test_failed_lookup_stops_the_start_unless_tolerated(
    service_account: Factory, ports: list[Served]
) -> None:
    """An identity that cannot read the ConfigMap: exit, or go on when tolerated."""
    blind = await service_account(name=unique("xoccm-blind"), cluster_role="system:auth-delegator")
    settings = parse_command_line(
        [
            "--bind-address=127.0.0.1",
            f"--secure-port={free_port()}",
            f"--authentication-kubeconfig={blind}",
        ]
    )
    with pytest.raises(SecureServingError, match="extension-apiserver-authentication"):
        await serve(settings)
    port = await start(
        f"--authentication-kubeconfig={blind}", "--authentication-tolerate-lookup-failure"
    )
    ports.append(port)
    assert (await get(port, "/healthz")).status_code == 200
    skipped = await start(f"--authentication-kubeconfig={blind}", "--authentication-skip-lookup")
    ports.append(skipped)


async def test_a_bad_review_kubeconfig_is_one_error(tmp_path: Path) -> None:
    settings = Settings(
        bind_address="127.0.0.1",
        secure_port=free_port(),
        authentication_kubeconfig=str(tmp_path / "missing"),
    )
    with pytest.raises(SecureServingError, match="delegated authentication kubeconfig"):
        await serve(settings)


def folder(parent: Path, name: str) -> Path:
    path = parent / name
    path.mkdir()
    return path


def client_context(
    *, cert: tuple[str, str] | None = None, ciphers: str | None = None, tls12: bool = False
) -> ssl.SSLContext:
    """A client context that trusts anything (the server's certificate is self-signed)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if tls12:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    if ciphers:
        context.set_ciphers(ciphers)
    if cert is not None:
        context.load_cert_chain(*cert)
    return context


def _raw_get(
    port: int,
    path: str,
    context: ssl.SSLContext,
    *,
    token: str | None = None,
    session: ssl.SSLSession | None = None,
) -> tuple[str, ssl.SSLSession | None, bool]:
    """Blocking (run it in a thread): one request over a fresh TLS connection; the
    status line, the TLS session (to offer again) and whether it was resumed."""
    headers = f"Authorization: Bearer {token}\r\n" if token else ""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, session=session) as tls,
    ):
        request = f"GET {path} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n"
        tls.sendall(request.encode())
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
        return answer.split(b"\r\n", 1)[0].decode(), tls.session, tls.session_reused


async def test_a_client_certificate_from_an_unknown_ca_is_a_401_not_a_failed_handshake(
    ports: list[Served], tmp_path: Path
) -> None:
    """Go asks for a client certificate and verifies it in the authenticator: one the
    client CA did not sign is 401 (even claiming system:masters), and the connection
    is not resumed later without a new verification."""
    trusted = CertificateAuthority(folder(tmp_path, "trusted"), common_name="scrapers-ca")
    stranger = CertificateAuthority(folder(tmp_path, "stranger"), common_name="stranger-ca")
    forged = stranger.issue("forged", common_name="prometheus", organizations=("system:masters",))
    genuine = trusted.issue("genuine", common_name="prometheus", organizations=("system:masters",))
    port = await start(f"--client-ca-file={trusted.cert}")
    ports.append(port)
    assert port.server is not None
    number = port.server.port
    forged_pair = (str(forged.cert), str(forged.key))
    forging = client_context(cert=forged_pair)
    for path in ("/metrics", "/healthz"):
        status, session, _ = await asyncio.to_thread(_raw_get, number, path, forging)
        assert status == "HTTP/1.1 401 Unauthorized", path
    answer = await get(port, "/metrics", cert=forged_pair)
    assert answer.status_code == 401
    assert answer.json()["reason"] == "Unauthorized"
    # A resumed session would carry the forged certificate unverified: none is offered.
    status, _, reused = await asyncio.to_thread(
        _raw_get, number, "/metrics", forging, session=session
    )
    assert (status, reused) == ("HTTP/1.1 401 Unauthorized", False)
    # The client CA's own certificates still authenticate, and no certificate is anonymous.
    genuine_client = client_context(cert=(str(genuine.cert), str(genuine.key)))
    status, _, _ = await asyncio.to_thread(_raw_get, number, "/metrics", genuine_client)
    assert status == "HTTP/1.1 200 OK"
    assert (await get(port, "/metrics")).status_code == 403
    assert (await get(port, "/healthz")).status_code == 200


async def test_with_an_unknown_client_certificate_a_valid_token_decides(
    ports: list[Served], tmp_path: Path, delegator: Path, kube: KubeClient
) -> None:
    """Go's union of the x509 and token authenticators: the certificate fails, the
    token authenticates the request."""
    trusted = CertificateAuthority(folder(tmp_path, "trusted"), common_name="scrapers-ca")
    stranger = CertificateAuthority(folder(tmp_path, "stranger"), common_name="stranger-ca")
    forged = stranger.issue("forged", common_name="someone", organizations=("system:masters",))
    port = await start(
        f"--client-ca-file={trusted.cert}",
        f"--authentication-kubeconfig={delegator}",
        f"--authorization-kubeconfig={delegator}",
    )
    ports.append(port)
    pair = (str(forged.cert), str(forged.key))
    allowed = await scraper_token(kube, allowed=True)
    denied = await scraper_token(kube, allowed=False)
    assert (await get(port, "/metrics", cert=pair, token=allowed)).status_code == 200
    assert (await get(port, "/metrics", cert=pair, token=denied)).status_code == 403
    assert (await get(port, "/metrics", cert=pair, token="not-a-token")).status_code == 401
    assert (await get(port, "/metrics", cert=pair)).status_code == 401


async def test_default_tls12_suites_are_gos_aeads_and_no_cbc(ports: list[Served]) -> None:
    """Every TLS 1.2 suite OpenSSL knows, offered alone: the server (an RSA
    certificate) takes exactly Go's default ECDHE-RSA AEAD suites."""
    port = await start()
    ports.append(port)
    assert port.server is not None
    offered = [
        suite["name"]
        for suite in ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).get_ciphers()
        if suite["protocol"] == "TLSv1.2"
    ]
    accepted = []
    for suite in offered:
        try:
            context = client_context(ciphers=suite, tls12=True)
            await asyncio.to_thread(_raw_get, port.server.port, "/healthz", context)
        except (ssl.SSLError, OSError):
            continue
        accepted.append(suite)
    assert sorted(accepted) == [
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ]
    # --tls-cipher-suites still chooses.
    chosen = await start("--tls-cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA")
    ports.append(chosen)
    assert chosen.server is not None
    context = client_context(ciphers="ECDHE-RSA-AES128-SHA", tls12=True)
    status, _, _ = await asyncio.to_thread(_raw_get, chosen.server.port, "/healthz", context)
    assert status == "HTTP/1.1 200 OK"
