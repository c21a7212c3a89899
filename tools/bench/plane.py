"""The integration suite's etcd + kube-apiserver, plus what benchmarks and fault
tests need from it: restarting kube-apiserver alone (etcd and its data kept),
and an audit log of our own to count every request a client made.

:class:`ManagedControlPlane` reuses :class:`tests.integration.controlplane.ControlPlane`
unchanged (same binaries, certificates, flags and readiness wait) and only
wraps how a process is spawned: it remembers each command line, so
kube-apiserver can be stopped and started again with exactly the same flags on
the same port, and it replaces whatever audit flags the base sets with its own
(Metadata level: who, verb, resource; no bodies).
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.integration.controlplane import ControlPlane, find_binaries

APISERVER = "kube-apiserver"
ETCD = "etcd"
#: The User-Agent the CCM's Kubernetes client sends (adapters.kubernetes.client).
CCM_USER_AGENT = "xenorchestra-cloud-controller-manager"
_AUDIT_POLICY: dict[str, Any] = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [{"level": "Metadata"}],
}


@dataclass
class ManagedControlPlane(ControlPlane):
    """A :class:`ControlPlane` whose kube-apiserver can be restarted and audited."""

    audit: bool = True
    _argv: dict[str, list[str]] = field(default_factory=dict)
    restarts: int = 0

    @classmethod
    def create(cls, *, audit: bool = True, bin_dir: Path | None = None) -> ManagedControlPlane:
        return cls(bin_dir or find_binaries(), audit=audit)

    @property
    def bench_audit_log(self) -> Path:
        return self.workdir / "logs" / "bench-audit.log"

    def _spawn(self, name: str, argv: list[str], logs: Path) -> None:
        if name == APISERVER and name not in self._argv:
            argv = [a for a in argv if not a.startswith("--audit-")]
            if self.audit:
                policy = self.workdir / "bench-audit-policy.yaml"
                policy.write_text(yaml.safe_dump(_AUDIT_POLICY), encoding="utf-8")
                argv += [
                    f"--audit-policy-file={policy}",
                    f"--audit-log-path={self.bench_audit_log}",
                    "--audit-log-mode=blocking",
                ]
        self._argv[name] = list(argv)
        super()._spawn(name, argv, logs)

    def _process(self, name: str) -> subprocess.Popen[bytes] | None:
        for proc_name, proc in self._procs:
            if proc_name == name and proc.poll() is None:
                return proc
        return None

    @property
    def apiserver_pid(self) -> int | None:
        proc = self._process(APISERVER)
        return proc.pid if proc else None

    def server_pids(self) -> dict[str, int]:
        """The running kube-apiserver and etcd, by name."""
        return {
            name: proc.pid
            for name in (APISERVER, ETCD)
            if (proc := self._process(name)) is not None
        }

    def stop_apiserver(self, *, grace: float = 15.0) -> None:
        """SIGTERM kube-apiserver, SIGKILL it after ``grace`` seconds (etcd keeps
        running with every object). It stops listening at once, but with watches
        open it may take until the kill to exit."""
        proc = self._process(APISERVER)
        if proc is None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        self._procs = [(n, p) for n, p in self._procs if p is not proc]
        log = self.workdir / "logs" / f"{APISERVER}.log"
        if log.exists():
            log.rename(log.with_name(f"{APISERVER}.{self.restarts}.log"))

    def start_apiserver(self, *, timeout: float = 60.0) -> float:
        """Start kube-apiserver again with the same flags; seconds until ready."""
        started = time.monotonic()
        assert self.admin_cert is not None, "start() the control plane first"
        self._spawn(APISERVER, self._argv[APISERVER], self.workdir / "logs")
        self._wait_ready(self.admin_cert, deadline=started + timeout)
        self.restarts += 1
        return time.monotonic() - started

    # -- audit ------------------------------------------------------------
    def audit_offset(self) -> int:
        """Where the audit log ends now: count requests from here with :meth:`requests_since`."""
        try:
            return self.bench_audit_log.stat().st_size
        except FileNotFoundError:
            return 0

    def audit_events(self, offset: int = 0) -> Iterator[dict[str, Any]]:
        try:
            with self.bench_audit_log.open("rb") as log:
                log.seek(offset)
                data = log.read()
        except FileNotFoundError:
            return
        for line in data.splitlines():
            try:
                yield json.loads(line)
            except ValueError:
                continue  # a line being written

    def requests_since(
        self, offset: int, *, user_agent: str = CCM_USER_AGENT, leases: bool = False
    ) -> Counter[str]:
        """Requests made by clients whose User-Agent starts with ``user_agent`` since
        ``offset``, as ``"<verb> <resource>[/<subresource>]"`` -> count. A watch counts
        once (when it starts); Lease requests (leader election, their own rate
        limiter) are left out unless ``leases``."""
        counts: Counter[str] = Counter()
        for event in self.audit_events(offset):
            if not str(event.get("userAgent", "")).startswith(user_agent):
                continue
            verb = str(event.get("verb", ""))
            stage = event.get("stage")
            if stage != ("ResponseStarted" if verb == "watch" else "ResponseComplete"):
                continue
            ref = event.get("objectRef") or {}
            resource = str(ref.get("resource", "")) or "(none)"
            if resource == "leases" and not leases:
                continue
            if ref.get("subresource"):
                resource += f"/{ref['subresource']}"
            counts[f"{verb} {resource}"] += 1
        return counts


WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")


def writes(counts: Counter[str]) -> int:
    return sum(n for key, n in counts.items() if key.split(" ", 1)[0] in WRITE_VERBS)
