"""The suite's own network namespace, private mount namespace and cgroup subtree.

One holder process (``sleep``) is started by ``unshare --net --mount
--propagation private``; every server of the suite joins its namespaces with
``nsenter`` and its cgroups with a small shell wrapper. So:

- the network: a veth pair, the namespace's end being the node's address
  (``node_ip``) and the machine's end a /30 beside it (the tests reach the API
  server and the fake XO through it); the ``kubernetes`` Service's ClusterIP sits
  on the namespace's loopback, where pods reach it without a kube-proxy. No route
  leads anywhere else: nothing inside can send traffic past the namespace;
- the mounts: tmpfs over /run, /var/lib and /var/log (containerd's shim sockets
  and runc's state under /run/containerd are hard-wired, kubelet links
  /var/log/containers, CNI caches in /var/lib/cni), and /etc/machine-id and
  /etc/resolv.conf bound to files of the suite. Nothing propagates to the machine;
  all of it goes when the last process of the namespace exits;
- the processes: all in the cgroup ``xoccm-node-<id>/node`` of every hierarchy, the
  pods in kubelet's ``xoccm-node-<id>/kubepods`` (``--cgroup-root``), so the teardown
  finds and kills every one of them, then removes the subtree.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from .host import cgroup_hierarchies

#: The kubernetes Service's ClusterIP (the first address of --service-cluster-ip-range).
SERVICE_CIDR = "10.0.0.0/24"
SERVICE_IP = "10.0.0.1"
POD_CIDR = "10.244.0.0/24"
#: Candidates for the veth /30; the first that overlaps no route of the machine wins.
LINK_CANDIDATES = [f"10.213.{n}.0/30" for n in range(0, 256, 4)]


def _run(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")
    return done.stdout


def free_link_network() -> ipaddress.IPv4Network:
    routes = []
    for line in _run("ip", "-4", "route", "show", "table", "all").splitlines():
        word = line.split()[0] if line.split() else ""
        if word in ("local", "broadcast", "unreachable", "blackhole", "prohibit"):
            word = line.split()[1]
        if word == "default":
            continue
        with contextlib.suppress(ValueError):
            routes.append(ipaddress.ip_network(word, strict=False))
    for candidate in LINK_CANDIDATES:
        network = ipaddress.ip_network(candidate)
        if not any(network.overlaps(route) for route in routes):
            return network  # type: ignore[return-value]
    raise RuntimeError("no free /30 for the node's veth among " + LINK_CANDIDATES[0] + "...")


class Namespaces:
    """The holder, the veth, the mounts and the cgroup subtree; ``close()`` undoes all."""

    def __init__(self, workdir: Path, *, machine_id: Path, resolv_conf: Path) -> None:
        self.id = secrets.token_hex(3)
        self.name = f"xoccm-node-{self.id}"
        self.workdir = workdir
        self.cgroups = [h / self.name for h in cgroup_hierarchies()]
        self.host_link = f"xoccm{self.id}h"
        network = free_link_network()
        hosts = list(network.hosts())
        self.host_ip, self.node_ip = str(hosts[0]), str(hosts[1])
        self.prefix = network.prefixlen
        self.holder: subprocess.Popen[bytes] | None = None
        self._machine_id = machine_id
        self._resolv_conf = resolv_conf
        self.started: list[tuple[str, subprocess.Popen[bytes]]] = []

    # -- set-up ---------------------------------------------------------------------
    def open(self) -> None:
        for group in self.cgroups:
            (group / "node").mkdir(parents=True)
            if (group.parent / "cpuset.cpus").exists():  # a new cpuset is empty: inherit
                for item in ("cpuset.cpus", "cpuset.mems"):
                    value = (group.parent / item).read_text()
                    (group / item).write_text(value)
                    (group / "node" / item).write_text(value)
        self.holder = self.spawn(
            "holder",
            ["unshare", "--net", "--mount", "--propagation", "private", "--", "sleep", "inf"],
            enter=False,
            log=self.workdir / "logs" / "holder.log",
        )
        deadline = time.monotonic() + 10
        mine = os.readlink("/proc/self/ns/net")
        while os.readlink(f"/proc/{self.holder.pid}/ns/net") == mine:
            if time.monotonic() > deadline or self.holder.poll() is not None:
                raise RuntimeError("the namespace holder did not start")
            time.sleep(0.01)
        self._network()
        self._mounts()

    def _network(self) -> None:
        pid = str(self.holder_pid)
        _run(
            "ip",
            "link",
            "add",
            self.host_link,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            pid,
        )
        _run("ip", "addr", "add", f"{self.host_ip}/{self.prefix}", "dev", self.host_link)
        _run("ip", "link", "set", self.host_link, "up")
        inside = ["nsenter", "-t", pid, "-n", "ip"]
        _run(*inside, "link", "set", "lo", "up")
        _run(*inside, "addr", "add", f"{SERVICE_IP}/32", "dev", "lo")
        _run(*inside, "addr", "add", f"{self.node_ip}/{self.prefix}", "dev", "eth0")
        _run(*inside, "link", "set", "eth0", "up")

    def _mounts(self) -> None:
        # -n: no utab, which mount(8) would keep in the machine's /run/mount.
        mount = ["nsenter", "-t", str(self.holder_pid), "-m", "mount", "-n"]
        for target in ("/run", "/var/lib", "/var/log"):
            _run(*mount, "-t", "tmpfs", "-o", "mode=755", "tmpfs", target)
        _run(*mount, "--bind", str(self._machine_id), "/etc/machine-id")
        _run(*mount, "--bind", str(self._resolv_conf), "/etc/resolv.conf")

    @property
    def holder_pid(self) -> int:
        assert self.holder is not None
        return self.holder.pid

    def argv(self, command: Sequence[str], *, enter: bool = True) -> list[str]:
        """``command`` run in the suite's cgroup (and namespaces, when ``enter``)."""
        procs = " ".join(str(group / "node" / "cgroup.procs") for group in self.cgroups)
        wrapper = f'for f in {procs}; do echo $$ > "$f"; done; exec "$@"'
        inner = list(command)
        if enter:
            inner = ["nsenter", "-t", str(self.holder_pid), "-m", "-n", "--", *inner]
        return ["sh", "-c", wrapper, "sh", *inner]

    def spawn(
        self,
        name: str,
        command: Sequence[str],
        *,
        log: Path,
        enter: bool = True,
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            proc = subprocess.Popen(
                self.argv(command, enter=enter),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        self.started.append((name, proc))
        return proc

    def run(self, command: Sequence[str], *, timeout: float = 60) -> str:
        """Run ``command`` inside the namespaces and wait for it."""
        done = subprocess.run(
            ["nsenter", "-t", str(self.holder_pid), "-m", "-n", "--", *command],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)}: {done.stderr.strip() or done.stdout}")
        return done.stdout

    # -- teardown -------------------------------------------------------------------
    def pids(self) -> set[int]:
        """Every process in the subtree (the pods' included)."""
        found: set[int] = set()
        for group in self.cgroups:
            if not group.exists():
                continue
            for procs in group.rglob("cgroup.procs"):
                with contextlib.suppress(OSError):
                    found.update(int(p) for p in procs.read_text().split())
        return found

    def pod_pids(self, uid: str = "") -> set[int]:
        """The processes of one pod (kubelet's cgroup ``pod<uid>`` under the subtree),
        or of every pod when ``uid`` is empty."""
        found: set[int] = set()
        for group in self.cgroups[:1]:
            for pod in group.rglob(f"pod{uid}*"):
                for procs in pod.rglob("cgroup.procs"):
                    with contextlib.suppress(OSError):
                        found.update(int(p) for p in procs.read_text().split())
        return found

    def kill_all(self, *, within: float = 20.0) -> None:
        deadline = time.monotonic() + within
        while pids := self.pids():
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                raise RuntimeError(f"processes survive SIGKILL in {self.name}: {sorted(pids)}")
            time.sleep(0.05)
        for _, proc in self.started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)

    def remove_cgroups(self, *, within: float = 20.0) -> None:
        deadline = time.monotonic() + within
        for group in self.cgroups:
            for directory in sorted(_dirs(group), key=lambda p: len(p.parts), reverse=True):
                while True:
                    try:
                        directory.rmdir()
                        break
                    except FileNotFoundError:
                        break
                    except OSError:  # busy a moment after its last process died
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.05)

    def close(self) -> None:
        self.kill_all()
        # The veth goes with the namespace; wait until the machine sees it gone.
        deadline = time.monotonic() + 10
        while Path(f"/sys/class/net/{self.host_link}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        with contextlib.suppress(RuntimeError):
            _run("ip", "link", "del", self.host_link)
        self.remove_cgroups()


def _dirs(root: Path) -> Iterator[Path]:
    if not root.is_dir():
        return
    yield root
    for path in root.rglob("*"):
        if path.is_dir():
            yield path
