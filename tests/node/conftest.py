"""Fixtures of the node suite: what operators deploy, run by a real kubelet.

Before any test starts (``pytest_collection_finish``), when node tests are
selected, everything is built or found in the caches under ~/.cache:
scripts/build-node.sh (kubelet, kube-controller-manager, kube-scheduler,
kubectl, containerd, runc, CNI plugins, pause), scripts/build-control-plane.sh
(etcd, kube-apiserver), scripts/install-helm.sh, and scripts/build-image (the
CCM image from the Dockerfile, the pause image). A build failure fails the tests
that need it, saying why.

The one reason to skip: the machine cannot host a node at all (not Linux, not
root: namespaces, mounts and cgroups need root). The reason is printed.

``node_cluster`` (session): the cluster of ``cluster.NodeCluster``; stopping it
kills every process, removes every cgroup, mount and file, writes kubelet's
sysctls back, and fails if the machine is not as it was.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.controlplane import find_binaries
from tests.tools import REPO_ROOT, InstalledTool

from .cluster import PAUSE_IMAGE, Binaries, NodeCluster
from .deploy import TIMINGS

HELM = InstalledTool("helm", variable="XOCCM_HELM", script="install-helm.sh")
_built: dict[str, Path | Exception] = {}
_timings: dict[str, float] = {}
_clusters: list[NodeCluster] = []


def unavailable() -> str | None:
    """Why this machine cannot host the node suite, or None."""
    if sys.platform != "linux":
        return f"the node suite needs Linux (this is {sys.platform})"
    if os.geteuid() != 0:
        return (
            "the node suite needs root (a network namespace, mounts, cgroups): "
            "run it as root, as CI does"
        )
    if not Path("/sys/fs/cgroup").is_dir():
        return "no cgroup filesystem at /sys/fs/cgroup"
    return None


def _script(name: str, *args: str) -> Path:
    done = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / name), *args],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"scripts/{name} failed ({done.returncode}): {done.stderr.strip()[-3000:]}"
        )
    return Path(done.stdout.strip().splitlines()[-1])


def _build(name: str, make: object) -> None:
    started = time.monotonic()
    try:
        _built[name] = make()  # type: ignore[operator]
    except Exception as err:  # reported by the fixture, test by test
        _built[name] = err
    _timings[name] = time.monotonic() - started


def pytest_collection_finish(session: pytest.Session) -> None:
    here = Path(__file__).parent
    mine = [i for i in session.items if here in Path(str(i.path)).parents]
    if not mine or _built or unavailable():
        return
    _build("node", lambda: Path(os.environ.get("XOCCM_NODE_BIN") or _script("build-node.sh")))
    _build("control-plane", find_binaries)
    _build("image", lambda: _script("build-image"))
    node = _built["node"]
    if isinstance(node, Path):
        _build(
            "pause",
            lambda: _script("build-image", "--pause", str(node / "pause"), "--tag", PAUSE_IMAGE),
        )
    if any("helm" in getattr(i, "fixturenames", ()) for i in mine):
        HELM.prepare(mine)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _timings:
        parts = ", ".join(f"{name} {seconds:.0f}s" for name, seconds in _timings.items())
        terminalreporter.write_line(f"node suite builds (cached or cold): {parts}")
    for cluster in _clusters:
        terminalreporter.write_line(
            f"node cluster: ready in {cluster.startup_seconds:.1f}s "
            "(etcd, kube-apiserver, controller-manager, scheduler, containerd, kubelet)"
        )
    if TIMINGS:
        parts = ", ".join(f"{case} {seconds:.1f}s" for case, seconds in TIMINGS.items())
        terminalreporter.write_line(
            f"from kubectl apply (helm install) to an initialized Node: {parts}"
        )


def built(name: str) -> Path:
    found = _built.get(name)
    if found is None:
        pytest.fail(f"{name}: not built (pytest_collection_finish did not run for it)")
    if isinstance(found, Exception):
        pytest.fail(f"{name} unavailable: {found}", pytrace=False)
    return found


@pytest.fixture(scope="session")
def image_archive() -> Path:
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    return built("image")


@pytest.fixture(scope="session")
def node_cluster(image_archive: Path) -> Iterator[NodeCluster]:
    script = shutil.which(
        "xenorchestra-cloud-controller-manager", path=str(Path(sys.executable).parent)
    )
    assert script, "the project's console script (the fake XO) is not installed in this venv"
    cluster = NodeCluster(
        Binaries(
            node=built("node"),
            control_plane=built("control-plane"),
            ccm_image=image_archive,
            pause_image=built("pause"),
            ccm_script=Path(script),
        )
    )
    try:
        cluster.start()
        _clusters.append(cluster)
        yield cluster
    finally:
        problems = cluster.stop()
        if problems:
            pytest.fail("the node suite left the machine changed:\n" + "\n".join(problems))


@pytest.fixture(scope="session")
def helm() -> Path:
    return HELM.path()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    report = yield
    if call.when == "call":
        item.stash[_FAILED] = bool(getattr(report, "failed", False))
    return report


_FAILED = pytest.StashKey[bool]()


@pytest.fixture(autouse=True)
def _diagnose_failures(request: pytest.FixtureRequest) -> Iterator[None]:
    """A failed node test's report gets the cluster's side of the story."""
    yield
    if not request.node.stash.get(_FAILED, False) or not _clusters:
        return
    cluster = _clusters[-1]
    parts = []
    for args in (
        ("get", "nodes", "-o", "wide"),
        ("get", "pods", "-A", "-o", "wide"),
        ("get", "events", "-A", "--sort-by=.lastTimestamp"),
    ):
        done = cluster.kubectl(*args, check=False)
        parts.append(f"$ kubectl {' '.join(args)}\n{done.stdout}{done.stderr}")
    pods = cluster.kubectl("-n", "kube-system", "get", "pods", "-o", "name", check=False)
    for pod in pods.stdout.split():
        done = cluster.kubectl("-n", "kube-system", "logs", pod, "--tail=60", check=False)
        parts.append(f"$ kubectl logs {pod}\n{done.stdout}{done.stderr}")
    for name in ("kubelet", "containerd", "kube-controller-manager", "fake-xo"):
        parts.append(cluster.tail(name, 30))
    request.node.add_report_section("teardown", "node cluster", "\n".join(parts))
