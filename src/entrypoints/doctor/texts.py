"""Fix hints several checks share: the kubectl commands and the RBAC manifest.

Each check family keeps its one-off hints next to its rule; these are the
ones more than one finding gives, so they read the same wherever they appear.
"""

from __future__ import annotations

#: The manifest granting every request of :func:`.rbac.required_permissions`.
RBAC_MANIFEST = "deploy/kubernetes/rbac.yaml"
CLUSTER_ROLE = "system:xenorchestra-cloud-controller-manager"

RBAC_FIX = f"apply {RBAC_MANIFEST} and bind the ClusterRole {CLUSTER_ROLE} to {{identity}}"

KUBELET_FIX = (
    "delete the node (kubectl delete node {name}) and restart kubelet with "
    "--cloud-provider=external: it registers again with the uninitialized taint and the "
    "CCM initializes it"
)

IMMUTABLE_FIX = (
    "providerID cannot change: delete the node (kubectl delete node {name}) and restart "
    "kubelet with --cloud-provider=external and without --provider-id"
)

POOL_FIX = (
    "reconnect the pool in XO (Settings > Servers); until then the CCM keeps the node, "
    "which is what you want during an XO outage"
)
