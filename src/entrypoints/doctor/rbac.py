"""RBAC: every request the CCM makes (the verbs of ``deploy/kubernetes/rbac.yaml``),
asked of the API server one SelfSubjectAccessReview each (reviews are not stored)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from adapters.kubernetes import ApiError, KubeClient
from entrypoints.doctor.findings import KUBE_ACCESS, Finding, fail, ok, unknown
from entrypoints.doctor.texts import RBAC_FIX


@dataclass(frozen=True, slots=True)
class Permission:
    """One request the CCM makes, as an access review asks it."""

    verb: str
    resource: str
    group: str = ""
    subresource: str = ""
    namespace: str = ""
    #: The one object the shipped RBAC grants the verb on (Roles with resourceNames).
    name: str = ""

    @property
    def resource_name(self) -> str:
        name = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        return f"{name}.{self.group}" if self.group else name


#: The CSR approver's requests (``cloud-node-csr-approval``): the approval is an
#: update of the CSR's ``approval`` subresource, which the API server allows only with
#: ``approve`` on the CSR's signer, here kubelet-serving alone.
CSR_APPROVAL_PERMISSIONS = (
    *(
        Permission(v, "certificatesigningrequests", group="certificates.k8s.io")
        for v in ("get", "list", "watch")
    ),
    Permission(
        "update", "certificatesigningrequests", group="certificates.k8s.io", subresource="approval"
    ),
    Permission(
        "approve", "signers", group="certificates.k8s.io", name="kubernetes.io/kubelet-serving"
    ),
)


def required_permissions(
    *,
    lease_namespace: str = "kube-system",
    startup_event_namespace: str = "kube-system",
    lease_name: str = "",
    csr_approval: bool = False,
) -> tuple[Permission, ...]:
    """Every verb of ``deploy/kubernetes/rbac.yaml``: what the CCM's code requests
    (the CSR approver's only with ``csr_approval``: it is off by default).

    Core events about Nodes go to ``default`` (as kube's controllers do);
    the startup ``FailedToCheckClient`` event to the pod's namespace; the Lease
    is read and written by name (the shipped Role names it), created without.
    """
    nodes = tuple(Permission(v, "nodes") for v in ("get", "list", "watch", "patch", "delete"))
    return (
        *nodes,
        Permission("patch", "nodes", subresource="status"),
        Permission("create", "events", namespace="default"),
        Permission("patch", "events", namespace="default"),
        *(
            Permission(v, "events", group="events.k8s.io", namespace=startup_event_namespace)
            for v in ("get", "create", "update")
        ),
        *(
            Permission(
                v,
                "leases",
                group="coordination.k8s.io",
                namespace=lease_namespace,
                name="" if v == "create" else lease_name,
            )
            for v in ("get", "create", "update")
        ),
        *(CSR_APPROVAL_PERMISSIONS if csr_approval else ()),
    )


def diagnose_access(identity: str, answers: Mapping[Permission, bool | None]) -> list[Finding]:
    """One line per resource the identity lacks verbs on; one ok line when nothing lacks.

    ``None`` answers are reviews that failed: they cannot prove anything.
    """
    missing: dict[str, list[str]] = {}
    undecided: list[str] = []
    for perm, allowed in answers.items():
        if allowed is None:
            undecided.append(f"{perm.verb} {perm.resource_name}")
        elif not allowed:
            where = f" in {perm.namespace}" if perm.namespace else ""
            missing.setdefault(f"{perm.resource_name}{where}", []).append(perm.verb)
    found = [
        fail(
            KUBE_ACCESS,
            identity,
            f"may not {', '.join(verbs)} {resource}: the CCM needs it",
            RBAC_FIX.format(identity=identity),
        )
        for resource, verbs in missing.items()
    ]
    if undecided:
        found.append(
            unknown(
                KUBE_ACCESS,
                identity,
                f"access reviews failed for {', '.join(undecided)}",
                "run doctor again; the API server must serve authorization.k8s.io/v1",
            )
        )
    if not found:
        note = (
            ""
            if identity.startswith("system:serviceaccount:")
            else " (doctor's own identity: run doctor in the CCM's pod to check the CCM's)"
        )
        found.append(
            ok(
                KUBE_ACCESS,
                identity,
                f"may make all {len(answers)} kinds of request the CCM makes{note}",
            )
        )
    return found


async def review(kube: KubeClient, perm: Permission) -> bool | None:
    attributes = {
        "verb": perm.verb,
        "group": perm.group,
        "resource": perm.resource,
        "subresource": perm.subresource,
        "namespace": perm.namespace,
        "name": perm.name,
    }
    try:
        answer = await kube.request(
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            body={
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": {k: v for k, v in attributes.items() if v}},
            },
        )
    except ApiError:
        return None
    return bool((answer.get("status") or {}).get("allowed"))
