"""A throwaway Kubernetes control plane (etcd + kube-apiserver) on loopback.

The integration tests and the demo use it, the way controller-runtime's
envtest does: real API semantics (resourceVersions, RBAC, watches), no
kubelet, no controller-manager. Binaries come from
``scripts/build-control-plane.sh`` (built from their Go modules, cached).
"""

from entrypoints.testkits.local_cluster.control_plane import (
    ControlPlane,
    cached_binaries,
    find_binaries,
)

__all__ = ["ControlPlane", "cached_binaries", "find_binaries"]
