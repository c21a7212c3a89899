"""A real etcd + kube-apiserver on loopback, started the way envtest starts them.

No kubelet, no controller-manager: tests create Nodes themselves, and there
is no garbage collection nor namespace finalization. Everything lives in one
temporary directory that ``stop()`` removes.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from entrypoints.testkits.local_cluster.pki import CertificateAuthority, CertPair, write_signing_key

#: Where scripts/build-control-plane.sh caches the binaries by default.
DEFAULT_CACHE = Path.home() / ".cache" / "xenorchestra-ccm" / "control-plane"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
#: Every request at Metadata level (who, verb, resource; no bodies), logged once:
#: when its response completes, or when it starts for a long-running watch.
AUDIT_POLICY: dict[str, Any] = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [{"level": "Metadata"}],
}


def cached_binaries() -> Path | None:
    """A directory with both binaries already built, or None (nothing is built here)."""
    override = os.environ.get("XOCCM_CONTROL_PLANE_BIN")
    candidates = (
        [Path(override)] if override else sorted(DEFAULT_CACHE.glob("kube-*"), reverse=True)
    )
    for candidate in candidates:
        if all((candidate / name).is_file() for name in ("etcd", "kube-apiserver")):
            return candidate
    return None


def find_binaries(*, build_script: Path | None = None) -> Path:
    """The directory holding ``etcd`` and ``kube-apiserver``.

    ``XOCCM_CONTROL_PLANE_BIN`` wins; otherwise ``build_script`` is asked (it
    only checks its cache when the binaries exist, and builds them if not).
    """
    override = os.environ.get("XOCCM_CONTROL_PLANE_BIN")
    if override:
        return Path(override)
    if build_script is None:
        found = cached_binaries()
        if found is None:
            raise FileNotFoundError(
                "control-plane binaries not built (scripts/build-control-plane.sh)"
            )
        return found
    done = subprocess.run(
        ["bash", str(build_script)], check=True, capture_output=True, text=True, timeout=3600
    )
    bin_dir = Path(done.stdout.strip().splitlines()[-1])
    for name in ("etcd", "kube-apiserver"):
        if not (bin_dir / name).is_file():
            raise FileNotFoundError(f"{bin_dir / name} missing after {build_script}")
    return bin_dir


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_kubeconfig(
    path: Path,
    *,
    server: str,
    ca_file: Path,
    user: str,
    client: CertPair | None = None,
    token: str | None = None,
) -> Path:
    """A one-cluster, one-user kubeconfig (client certificate or bearer token)."""
    credentials: dict[str, str] = {}
    if client is not None:
        credentials = {"client-certificate": str(client.cert), "client-key": str(client.key)}
    if token is not None:
        credentials = {"token": token}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "test", "cluster": {"server": server, "certificate-authority": str(ca_file)}}
        ],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": user, "context": {"cluster": "test", "user": user}}],
        "current-context": user,
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    path.chmod(0o600)
    return path


@dataclass
class ControlPlane:
    """etcd and kube-apiserver processes plus the files a client needs."""

    bin_dir: Path
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="xoccm-kube-")))
    etcd_port: int = 0
    api_port: int = 0
    startup_seconds: float = 0.0
    admin_cert: CertPair | None = None
    _procs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def etcd_url(self) -> str:
        return f"http://127.0.0.1:{self.etcd_port}"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "pki" / "ca.crt"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.workdir / "admin.kubeconfig"

    @property
    def audit_log(self) -> Path:
        """kube-apiserver's audit log: one JSON event per line, at ``Metadata``
        level, for every request once its response is complete (or has started,
        for watches); see :meth:`read_audit_log`."""
        return self.workdir / "audit.log"

    @property
    def audit_policy(self) -> Path:
        return self.workdir / "audit-policy.yaml"

    def start(self, *, timeout: float = 60.0) -> None:
        started = time.monotonic()
        pki = self.workdir / "pki"
        pki.mkdir(parents=True)
        ca = CertificateAuthority(pki)
        serving = ca.issue(
            "apiserver",
            common_name="kube-apiserver",
            hosts=("127.0.0.1", "localhost", "kubernetes.default.svc"),
            server=True,
        )
        admin = ca.issue("admin", common_name="admin", organizations=("system:masters",))
        self.admin_cert = admin
        sa = write_signing_key(pki, "sa")
        self.etcd_port, peer_port, self.api_port = free_port(), free_port(), free_port()
        logs = self.workdir / "logs"
        logs.mkdir()
        self.audit_policy.write_text(yaml.safe_dump(AUDIT_POLICY), encoding="utf-8")

        self._spawn(
            "etcd",
            [
                str(self.bin_dir / "etcd"),
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=default=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
            logs,
        )
        self._spawn(
            "kube-apiserver",
            [
                str(self.bin_dir / "kube-apiserver"),
                f"--etcd-servers={self.etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.api_port}",
                f"--cert-dir={self.workdir / 'certs'}",
                f"--tls-cert-file={serving.cert}",
                f"--tls-private-key-file={serving.key}",
                f"--client-ca-file={self.ca_file}",
                "--authorization-mode=RBAC",
                f"--service-account-issuer={SA_ISSUER}",
                f"--service-account-key-file={sa.cert}",
                f"--service-account-signing-key-file={sa.key}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--disable-admission-plugins=ServiceAccount",
                "--allow-privileged=true",
                "--endpoint-reconciler-type=none",
                # ConfigMap watches go straight to etcd, so a test can make a
                # resourceVersion expire (compact etcd) and see the 410 Gone a
                # reflector must survive; every other resource keeps its cache.
                "--watch-cache-sizes=configmaps#0",
                "--profiling=false",
                # Who did what: the RBAC audit (tests/packaging) reads this log
                # to prove every verb the shipped ClusterRole grants is used.
                f"--audit-policy-file={self.audit_policy}",
                f"--audit-log-path={self.audit_log}",
                "--audit-log-mode=blocking",
                "--v=0",
            ],
            logs,
        )
        write_kubeconfig(
            self.admin_kubeconfig,
            server=self.server,
            ca_file=self.ca_file,
            user="admin",
            client=admin,
        )
        self._wait_ready(admin, deadline=started + timeout)
        self.startup_seconds = time.monotonic() - started

    def _spawn(self, name: str, argv: list[str], logs: Path) -> None:
        with (logs / f"{name}.log").open("wb") as out:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._procs.append((name, proc))

    def _wait_ready(self, admin: CertPair, *, deadline: float) -> None:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        context.load_cert_chain(str(admin.cert), str(admin.key))
        last = "not answering"
        while time.monotonic() < deadline:
            for name, proc in self._procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited ({proc.returncode}){self._tail()}")
            try:
                with urllib.request.urlopen(
                    f"{self.server}/readyz", context=context, timeout=2
                ) as resp:
                    if resp.status == 200:
                        return
            except urllib.error.HTTPError as err:
                last = f"HTTP {err.code}"
                err.close()
            except (OSError, ssl.SSLError) as err:
                last = str(err)
            time.sleep(0.1)
        raise TimeoutError(f"kube-apiserver not ready: {last}{self._tail()}")

    def _tail(self) -> str:
        out = []
        for log in sorted((self.workdir / "logs").glob("*.log")):
            lines = log.read_text(errors="replace").splitlines()[-15:]
            out.append(f"\n--- {log.name} ---\n" + "\n".join(lines))
        return "".join(out)

    def read_audit_log(self) -> list[dict[str, Any]]:
        """The audit events written so far (a partly written last line is skipped)."""
        events: list[dict[str, Any]] = []
        try:
            text = self.audit_log.read_text(encoding="utf-8")
        except FileNotFoundError:
            return events
        for line in text.splitlines():
            with contextlib.suppress(ValueError):
                events.append(json.loads(line))
        return events

    def compact_etcd(self) -> int:
        """Compact etcd's history up to its current revision; returns that revision.

        Watches (served from etcd) from an older resourceVersion then get 410 Gone.
        """
        key = base64.b64encode(b"/registry/").decode()
        revision = int(self._etcd("/v3/kv/range", {"key": key, "limit": 1})["header"]["revision"])
        self._etcd("/v3/kv/compaction", {"revision": str(revision), "physical": True})
        return revision

    def _etcd(self, path: str, body: dict[str, object]) -> dict[str, Any]:
        request = urllib.request.Request(
            self.etcd_url + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as resp:
            answer: dict[str, Any] = json.loads(resp.read())
        return answer

    def stop(self) -> None:
        """Stop kube-apiserver, then etcd, then delete every file.

        The cluster is thrown away, so a short grace is enough: kube-apiserver
        with an open watch can take 15 s to finish a graceful stop.
        """
        for _, proc in reversed(self._procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
        self._procs.clear()
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self.workdir)
