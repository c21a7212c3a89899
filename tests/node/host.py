"""What the node suite may change on the machine, seen before and after.

A kubelet and a container runtime reach beyond their own directories: kubelet
writes kernel sysctls (vm.overcommit_memory, kernel.panic, ...), both make cgroups,
mounts and network devices. The suite keeps them to its own cgroup subtree, network
namespace and private mount namespace (tmpfs over /run, /var/lib, /var/log there),
and this module proves it: a :class:`HostState` taken before is compared with one
taken after the teardown, and the sysctls are written back first.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

#: Every sysctl kubelet sets when protectKernelDefaults is off
#: (pkg/kubelet/cm/container_manager_linux.go, setupKernelTunables).
KUBELET_SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)
CGROUP_ROOT = Path("/sys/fs/cgroup")
#: Default paths of kubelet, containerd, runc and the CNI plugins: none may appear.
WATCHED_PATHS = (
    "/var/lib/kubelet",
    "/var/lib/containerd",
    "/var/lib/cni",
    "/var/log/pods",
    "/var/log/containers",
    "/run/containerd",
    "/run/mount",
    "/run/netns",
    "/run/runc",
    "/run/nri",
    "/etc/cni",
    "/etc/kubernetes",
    "/opt/cni",
    "/opt/containerd",
    "/usr/libexec/kubernetes",
)


def read_sysctl(name: str) -> str:
    return (Path("/proc/sys") / name).read_text().strip()


def write_sysctl(name: str, value: str) -> None:
    (Path("/proc/sys") / name).write_text(value + "\n")


def cgroup_hierarchies() -> list[Path]:
    """The mounted cgroup hierarchies (v1 controllers, named ones, the unified one)."""
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        fstype = fields[fields.index("-") + 1]
        if fstype in ("cgroup", "cgroup2"):
            out.append(Path(fields[4]))
    return sorted(set(out))


def _mount_points() -> frozenset[str]:
    return frozenset(line.split()[4] for line in Path("/proc/1/mountinfo").read_text().splitlines())


def _links() -> frozenset[str]:
    done = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True)
    return frozenset(line.split(":")[1].strip().split("@")[0] for line in done.stdout.splitlines())


@dataclass(frozen=True)
class HostState:
    sysctls: tuple[tuple[str, str], ...]
    cgroups: frozenset[str]
    mounts: frozenset[str]
    links: frozenset[str]
    paths: frozenset[str]

    @classmethod
    def take(cls) -> HostState:
        cgroups = frozenset(
            str(child)
            for hierarchy in cgroup_hierarchies()
            for child in hierarchy.iterdir()
            if child.is_dir()
        )
        return cls(
            sysctls=tuple((name, read_sysctl(name)) for name in KUBELET_SYSCTLS),
            cgroups=cgroups,
            mounts=_mount_points(),
            links=_links(),
            paths=frozenset(p for p in WATCHED_PATHS if os.path.lexists(p)),
        )

    def restore_sysctls(self) -> None:
        for name, value in self.sysctls:
            if read_sysctl(name) != value:
                write_sysctl(name, value)

    def differences(self, after: HostState) -> list[str]:
        """What ``after`` has that this state had not, or lost (empty: the same)."""
        out = []
        for (name, before), (_, now) in zip(self.sysctls, after.sysctls, strict=True):
            if before != now:
                out.append(f"sysctl {name}: {before} -> {now}")
        for label, old, new in (
            ("cgroup", self.cgroups, after.cgroups),
            ("mount", self.mounts, after.mounts),
            ("network device", self.links, after.links),
            ("path", self.paths, after.paths),
        ):
            out += [f"{label} left behind: {item}" for item in sorted(new - old)]
            out += [f"{label} gone: {item}" for item in sorted(old - new)]
        return out
