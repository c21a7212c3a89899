"""A one-node Kubernetes cluster inside the suite's namespaces (``netns.Namespaces``).

etcd, kube-apiserver (Node,RBAC authorization, the default admission plugins plus
NodeRestriction), kube-controller-manager, kube-scheduler, containerd v2 with runc
and the CNI bridge plugin, and a kubelet with ``--cloud-provider=external`` whose
node IP is the namespace's address and whose ``systemUUID`` is the UUID written to
the /etc/machine-id the namespace sees (no DMI on these VMs: kubelet reports the
machine-id). Images come from OCI archives imported with ``ctr``: nothing is pulled.
The fake XO server runs in the namespace too, at the node's address. The servers
listen on their usual ports (443, 2379, 10250, ...): free by construction in a network
namespace that only the suite uses, so nothing collides with the machine's own.

Every file lives in one temporary directory; :meth:`NodeCluster.stop` kills every
process of the suite's cgroup subtree, removes the subtree and the directory,
writes kubelet's sysctls back and checks that the machine is as it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from entrypoints.testkits.local_cluster.control_plane import write_kubeconfig
from entrypoints.testkits.local_cluster.pki import CertificateAuthority, CertPair, write_signing_key

from .host import HostState
from .netns import POD_CIDR, SERVICE_CIDR, SERVICE_IP, Namespaces

NODE_NAME = "xoccm-worker-1"
#: The kubernetes Service's port too: pods reach 10.0.0.1:443 with no kube-proxy in between.
API_PORT = 443
FAKE_XO_PORT = 8080
PAUSE_IMAGE = "localhost/xenorchestra-ccm-node/pause:1"
UNINITIALIZED = "node.cloudprovider.kubernetes.io/uninitialized"


class ClusterError(RuntimeError):
    """The cluster did not come up or could not be torn down; the message says why."""


def wait_for(check: Callable[[], Any], *, within: float, every: float = 0.2, what: str = "") -> Any:
    """Poll ``check()`` until it returns something truthy; that value is returned."""
    deadline = time.monotonic() + within
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            outcome = check()
        except (OSError, subprocess.SubprocessError, ValueError, KeyError) as err:
            last, outcome = err, None
        if outcome:
            return outcome
        time.sleep(every)
    raise TimeoutError(
        f"{what or check} not within {within}s" + (f" (last: {last})" if last else "")
    )


@dataclass(frozen=True)
class Binaries:
    """Where everything comes from: scripts/build-node.sh, build-control-plane.sh,
    scripts/build-image and the project's own console script (for the fake XO)."""

    node: Path
    control_plane: Path
    ccm_image: Path
    pause_image: Path
    ccm_script: Path


class NodeCluster:
    def __init__(self, binaries: Binaries) -> None:
        self.bin = binaries
        self.workdir = Path(tempfile.mkdtemp(prefix="xoccm-node-"))
        self.workdir.chmod(0o755)
        self.logs = self.workdir / "logs"
        self.logs.mkdir()
        self.machine_id = self.workdir / "machine-id"
        self.system_uuid = str(uuid.uuid4())
        self.machine_id.write_text(self.system_uuid + "\n")
        self.resolv_conf = self.workdir / "resolv.conf"
        # Nothing resolves anywhere: no name may lead out of the namespace.
        self.resolv_conf.write_text("options timeout:1 attempts:1\n")
        self.before = HostState.take()
        self.ns = Namespaces(self.workdir, machine_id=self.machine_id, resolv_conf=self.resolv_conf)
        self.kubelet: subprocess.Popen[bytes] | None = None
        self.startup_seconds = 0.0
        self.ca: CertificateAuthority | None = None

    # -- addresses --------------------------------------------------------------------
    @property
    def node_ip(self) -> str:
        return self.ns.node_ip

    @property
    def server(self) -> str:
        return f"https://{self.node_ip}:{API_PORT}"

    @property
    def xo_url(self) -> str:
        return f"http://{self.node_ip}:{FAKE_XO_PORT}"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.workdir / "admin.kubeconfig"

    @property
    def containerd_socket(self) -> Path:
        return self.workdir / "containerd" / "containerd.sock"

    # -- start ------------------------------------------------------------------------
    def start(self) -> None:
        started = time.monotonic()
        self.ns.open()
        self._pki()
        self._control_plane()
        self._containerd()
        self._fake_xo()
        self.start_kubelet()
        self.wait_node_ready()
        self.startup_seconds = time.monotonic() - started

    def _pki(self) -> None:
        pki = self.workdir / "pki"
        pki.mkdir()
        ca = self.ca = CertificateAuthority(pki, common_name="xoccm-node-ca")
        self.serving = ca.issue(
            "apiserver",
            common_name="kube-apiserver",
            server=True,
            hosts=(
                self.node_ip,
                SERVICE_IP,
                "127.0.0.1",
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
        )
        self.sa = write_signing_key(pki, "sa")
        identities = {
            "admin": ("admin", ("system:masters",)),
            "kcm": ("system:kube-controller-manager", ()),
            "scheduler": ("system:kube-scheduler", ()),
            "kubelet": (f"system:node:{NODE_NAME}", ("system:nodes",)),
            "apiserver-kubelet": ("kube-apiserver-kubelet-client", ("system:masters",)),
        }
        self.certs: dict[str, CertPair] = {}
        for stem, (cn, groups) in identities.items():
            self.certs[stem] = ca.issue(stem, common_name=cn, organizations=groups)
            write_kubeconfig(
                self.workdir / f"{stem}.kubeconfig",
                server=self.server,
                ca_file=ca.cert,
                user=cn,
                client=self.certs[stem],
            )

    def _spawn(
        self, name: str, argv: Sequence[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        return self.ns.spawn(name, argv, log=self.logs / f"{name}.log", env=env)

    def _control_plane(self) -> None:
        cp = self.bin.control_plane
        assert self.ca is not None
        self._spawn(
            "etcd",
            [
                str(cp / "etcd"),
                f"--data-dir={self.workdir / 'etcd'}",
                "--listen-client-urls=http://127.0.0.1:2379",
                "--advertise-client-urls=http://127.0.0.1:2379",
                "--listen-peer-urls=http://127.0.0.1:2380",
                "--initial-advertise-peer-urls=http://127.0.0.1:2380",
                "--initial-cluster=default=http://127.0.0.1:2380",
                "--listen-metrics-urls=http://127.0.0.1:2381",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        self._spawn(
            "kube-apiserver",
            [
                str(cp / "kube-apiserver"),
                "--etcd-servers=http://127.0.0.1:2379",
                "--bind-address=0.0.0.0",
                f"--advertise-address={self.node_ip}",
                f"--secure-port={API_PORT}",
                f"--cert-dir={self.workdir / 'apiserver-certs'}",
                f"--tls-cert-file={self.serving.cert}",
                f"--tls-private-key-file={self.serving.key}",
                f"--client-ca-file={self.ca.cert}",
                "--authorization-mode=Node,RBAC",
                # The defaults (ServiceAccount, Priority, DefaultTolerationSeconds, ...)
                # plus what a kubeadm cluster adds.
                "--enable-admission-plugins=NodeRestriction",
                f"--kubelet-client-certificate={self.certs['apiserver-kubelet'].cert}",
                f"--kubelet-client-key={self.certs['apiserver-kubelet'].key}",
                "--kubelet-preferred-address-types=InternalIP",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={self.sa.cert}",
                f"--service-account-signing-key-file={self.sa.key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                "--profiling=false",
                "--v=1",
            ],
        )
        self.wait_api_ready()
        common = [
            "--bind-address=127.0.0.1",
            "--leader-elect=false",
            "--profiling=false",
            "--v=1",
        ]
        self._spawn(
            "kube-controller-manager",
            [
                str(self.bin.node / "kube-controller-manager"),
                f"--kubeconfig={self.workdir / 'kcm.kubeconfig'}",
                f"--authentication-kubeconfig={self.workdir / 'kcm.kubeconfig'}",
                f"--authorization-kubeconfig={self.workdir / 'kcm.kubeconfig'}",
                f"--root-ca-file={self.ca.cert}",
                f"--service-account-private-key-file={self.sa.key}",
                "--use-service-account-credentials=true",  # as kubeadm: one identity per controller
                "--controllers=*",
                # Its default, under /usr/libexec, would be created on the machine.
                f"--flex-volume-plugin-dir={self.workdir / 'kcm-flexvolume'}",
                # Node health from the kubelet's Lease: NotReady 16 s after it stops.
                "--node-monitor-period=2s",
                "--node-monitor-grace-period=16s",
                *common,
            ],
        )
        self._spawn(
            "kube-scheduler",
            [
                str(self.bin.node / "kube-scheduler"),
                f"--kubeconfig={self.workdir / 'scheduler.kubeconfig'}",
                f"--authentication-kubeconfig={self.workdir / 'scheduler.kubeconfig'}",
                f"--authorization-kubeconfig={self.workdir / 'scheduler.kubeconfig'}",
                *common,
            ],
        )

    def wait_api_ready(self, within: float = 60.0) -> None:
        assert self.ca is not None
        context = ssl.create_default_context(cafile=str(self.ca.cert))
        context.load_cert_chain(str(self.certs["admin"].cert), str(self.certs["admin"].key))

        def ready() -> bool:
            self.check_alive()
            try:
                with urllib.request.urlopen(
                    f"{self.server}/readyz", context=context, timeout=2
                ) as r:
                    return bool(r.status == 200)
            except urllib.error.HTTPError as err:
                err.close()
                return False

        wait_for(ready, within=within, what="kube-apiserver /readyz")

    def check_alive(self) -> None:
        for name, proc in self.ns.started:
            if name not in ("kubelet", "fake-xo") and proc.poll() is not None:
                raise ClusterError(f"{name} exited ({proc.returncode}){self.tail(name)}")

    def tail(self, name: str, lines: int = 25) -> str:
        log = self.logs / f"{name}.log"
        if not log.exists():
            return ""
        text = log.read_text(errors="replace").splitlines()[-lines:]
        return f"\n--- {name} ---\n" + "\n".join(text)

    # -- the runtime ------------------------------------------------------------------
    def _containerd(self) -> None:
        root = self.workdir / "containerd"
        cni = self.workdir / "cni"
        (cni / "net.d").mkdir(parents=True)
        (cni / "net.d" / "10-xoccm-bridge.conflist").write_text(
            json.dumps(
                {
                    "cniVersion": "1.0.0",
                    "name": "xoccm-pods",
                    "plugins": [
                        {
                            "type": "bridge",
                            "bridge": "cni0",
                            "isGateway": True,
                            "ipMasq": False,
                            "hairpinMode": True,
                            "ipam": {
                                "type": "host-local",
                                "ranges": [[{"subnet": POD_CIDR}]],
                                "routes": [{"dst": "0.0.0.0/0"}],
                                "dataDir": str(cni / "ipam"),
                            },
                        }
                    ],
                }
            )
        )
        config = f"""\
version = 3
root = "{root / "root"}"
state = "/run/containerd"
disabled_plugins = ["io.containerd.nri.v1.nri"]

[grpc]
  address = "{self.containerd_socket}"

[ttrpc]
  address = "{self.containerd_socket}.ttrpc"

[plugins.'io.containerd.internal.v1.opt']
  path = "{root / "opt"}"

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "{PAUSE_IMAGE}"

[plugins.'io.containerd.cri.v1.runtime']
  # No CAP_SYS_RESOURCE on these VMs: without it every sandbox fails with
  # "can't get final child's PID from pipe: EOF".
  restrict_oom_score_adj = true
  enable_cdi = false
  cdi_spec_dirs = []
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = "{self.bin.node / "runc"}"
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["{self.bin.node / "cni"}"]
    conf_dir = "{cni / "net.d"}"
"""
        root.mkdir()
        (root / "config.toml").write_text(config)
        env = {"PATH": f"{self.bin.node}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"}
        self._spawn(
            "containerd",
            [str(self.bin.node / "containerd"), f"--config={root / 'config.toml'}"],
            env=env,
        )
        wait_for(
            lambda: self.containerd_socket.exists() and self.ctr("version"),
            within=30,
            what="containerd",
        )
        for archive in (self.bin.pause_image, self.bin.ccm_image):
            self.ctr("images", "import", "--local", str(archive), timeout=180)

    def ctr(self, *args: str, timeout: float = 30) -> str:
        done = subprocess.run(
            [
                str(self.bin.node / "ctr"),
                f"--address={self.containerd_socket}",
                "--namespace=k8s.io",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise ClusterError(
                f"ctr {' '.join(args)}: {done.stderr.strip()}{self.tail('containerd')}"
            )
        return done.stdout

    def _fake_xo(self) -> None:
        self._spawn(
            "fake-xo",
            [
                str(self.bin.ccm_script),
                "fake-xo",
                "--listen",
                f"{self.node_ip}:{FAKE_XO_PORT}",
                "--empty",
                "--ping-interval=5",
            ],
        )

        def answers() -> bool:
            with urllib.request.urlopen(f"{self.xo_url}/_control/state", timeout=2) as r:
                return bool(r.status == 200)

        wait_for(answers, within=30, what="the fake XO")

    # -- the kubelet ------------------------------------------------------------------
    def _kubelet_config(self) -> Path:
        assert self.ca is not None
        path = self.workdir / "kubelet-config.yaml"
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": self.node_ip,
            "port": 10250,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": 10248,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(self.ca.cert)},
            },
            "authorization": {"mode": "Webhook"},
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": f"/{self.ns.name}",
            # These VMs run cgroup v1, which kubelet refuses by default since 1.35.
            "failCgroupV1": False,
            "containerRuntimeEndpoint": f"unix://{self.containerd_socket}",
            "resolvConf": str(self.resolv_conf),
            "podLogsDir": str(self.workdir / "pod-logs"),
            "volumePluginDir": str(self.workdir / "volume-plugins"),
            "clusterDomain": "cluster.local",
            "failSwapOn": False,
            "nodeLeaseDurationSeconds": 8,
            "nodeStatusUpdateFrequency": "4s",
            "nodeStatusReportFrequency": "10s",
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {
                "memory.available": "10Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
            },
            "maxPods": 20,
            "shutdownGracePeriod": "0s",
            "serializeImagePulls": False,
        }
        path.write_text(yaml.safe_dump(config))
        return path

    def start_kubelet(self, system_uuid: str | None = None) -> None:
        """Start the kubelet; with ``system_uuid``, as a machine of that UUID (the
        bound /etc/machine-id is rewritten in place)."""
        if system_uuid is not None:
            self.system_uuid = system_uuid
            with self.machine_id.open("r+") as f:
                f.write(system_uuid + "\n")
                f.truncate()
        self.kubelet = self._spawn(
            "kubelet",
            [
                str(self.bin.node / "kubelet"),
                f"--config={self._kubelet_config()}",
                f"--kubeconfig={self.workdir / 'kubelet.kubeconfig'}",
                f"--root-dir={self.workdir / 'kubelet'}",
                f"--cert-dir={self.workdir / 'kubelet' / 'pki'}",
                f"--node-ip={self.node_ip}",
                f"--hostname-override={NODE_NAME}",
                "--cloud-provider=external",
                "--v=2",
            ],
            env={
                "PATH": f"{self.bin.node}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"
            },
        )

    def stop_kubelet(self) -> None:
        if self.kubelet is not None and self.kubelet.poll() is None:
            self.kubelet.terminate()
            try:
                self.kubelet.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kubelet.kill()
                self.kubelet.wait(timeout=10)
        self.kubelet = None

    def node(self) -> dict[str, Any] | None:
        done = self.kubectl("get", "node", NODE_NAME, "-o", "json", check=False)
        return json.loads(done.stdout) if done.returncode == 0 else None

    def wait_node_ready(self, within: float = 90.0) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            self.check_alive()
            if self.kubelet is None or self.kubelet.poll() is not None:
                raise ClusterError(f"kubelet exited{self.tail('kubelet', 40)}")
            node = self.node()
            if node is None:
                return None
            conditions = {c["type"]: c["status"] for c in node["status"].get("conditions", [])}
            return node if conditions.get("Ready") == "True" else None

        try:
            return wait_for(ready, within=within, what=f"Node {NODE_NAME} Ready")  # type: ignore[no-any-return]
        except TimeoutError as err:
            raise ClusterError(f"{err}{self.tail('kubelet', 40)}") from None

    # -- clients ----------------------------------------------------------------------
    def kubectl(
        self, *args: str, check: bool = True, stdin: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(self.bin.node / "kubectl"), f"--kubeconfig={self.admin_kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)}: {done.stderr.strip()}")
        return done

    def kubectl_json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    # -- stop -------------------------------------------------------------------------
    def stop(self) -> list[str]:
        """Tear everything down; returns how the machine differs from before (empty)."""
        problems: list[str] = []
        self.stop_kubelet()
        try:
            self.ns.close()
        except (OSError, RuntimeError) as err:
            problems.append(f"teardown: {err}")
        self.before.restore_sysctls()
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self.workdir)
        problems += self.before.differences(HostState.take())
        return problems
