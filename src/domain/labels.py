"""Label, annotation and taint keys the CCM reads or writes.

The ``*.k8s.xenorchestra/*`` keys are a public contract: the XO CSI driver
reads ``topology.k8s.xenorchestra/pool_id``, so they never change.
"""

from __future__ import annotations

from domain.model import Taint, TaintEffect

INSTANCE_TYPE = "node.kubernetes.io/instance-type"
INSTANCE_TYPE_BETA = "beta.kubernetes.io/instance-type"
ZONE = "topology.kubernetes.io/zone"
ZONE_BETA = "failure-domain.beta.kubernetes.io/zone"
REGION = "topology.kubernetes.io/region"
REGION_BETA = "failure-domain.beta.kubernetes.io/region"

#: (beta, GA) pairs: an initialized node's beta value is copied to its GA twin.
BETA_TO_GA = (
    (ZONE_BETA, ZONE),
    (REGION_BETA, REGION),
    (INSTANCE_TYPE_BETA, INSTANCE_TYPE),
)

XO_NAMESPACE = "k8s.xenorchestra"
VM_NAME_LABEL = "vm.k8s.xenorchestra/name_label"
POOL_ID = "topology.k8s.xenorchestra/pool_id"
POOL_NAME_LABEL = "topology.k8s.xenorchestra/pool_name_label"
HOST_ID = "topology.k8s.xenorchestra/host_id"
HOST_NAME_LABEL = "topology.k8s.xenorchestra/host_name_label"
ORIGINAL_HOST_ID = "topology.k8s.xenorchestra/original_host_id"
ORIGINAL_POOL_ID = "topology.k8s.xenorchestra/original_pool_id"

UNKNOWN_NAME = "unknown"

#: kubelet ``--node-ip``: the addresses the CCM must keep as InternalIP.
PROVIDED_NODE_IP = "alpha.kubernetes.io/provided-node-ip"

UNINITIALIZED_TAINT_KEY = "node.cloudprovider.kubernetes.io/uninitialized"
#: On a Node whose out-of-service taint this CCM added (written in the same patch):
#: the taint's value alone cannot say whose it is, since Kubernetes' documentation
#: tells operators to add the very same one by hand.
OUT_OF_SERVICE_ADDED_BY = "node.k8s.xenorchestra/out-of-service-taint"
SHUTDOWN_TAINT = Taint(
    key="node.cloudprovider.kubernetes.io/shutdown", effect=TaintEffect.NO_SCHEDULE
)


_KUBERNETES_NAMESPACES = ("kubernetes.io", "k8s.io")
_KUBERNETES_SUBDOMAINS = (".kubernetes.io", ".k8s.io")


def in_kubernetes_namespace(key: str) -> bool:
    """True for keys under ``kubernetes.io`` or ``k8s.io`` (and their subdomains).

    The cloud-node controller never adds such keys as "additional" labels:
    those namespaces belong to Kubernetes itself.
    """
    prefix, slash, _ = key.partition("/")
    if not slash:
        return False
    return prefix in _KUBERNETES_NAMESPACES or prefix.endswith(_KUBERNETES_SUBDOMAINS)
