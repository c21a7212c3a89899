"""``doctor``'s command line: the options, parsed."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from application.controllers import CLOUD_NODE_CSR_APPROVAL, DEFAULT_CONTROLLERS
from entrypoints.doctor.nodes import DEFAULT_UNINITIALIZED_GRACE
from entrypoints.flags.settings import FlagError, parse_bool, parse_controllers, parse_duration

PROG = "xenorchestra-cloud-controller-manager doctor"


@dataclass(frozen=True)
class DoctorOptions:
    cloud_config: str | None = None
    kubeconfig: str | None = None
    output: str = "table"
    leader_elect: bool = True
    lease_name: str = "cloud-controller-manager"
    lease_namespace: str = "kube-system"
    uninitialized_grace: float = DEFAULT_UNINITIALIZED_GRACE
    timeout: float = 10.0
    all_nodes: bool = False
    reset_deletion_breaker: bool = False
    v: int = 0
    controllers: tuple[str, ...] = DEFAULT_CONTROLLERS

    @property
    def csr_approval(self) -> bool:
        """Whether the CCM runs the kubelet serving CSR approver (as ``--controllers`` says)."""
        return CLOUD_NODE_CSR_APPROVAL in self.controllers


def _controllers(text: str) -> tuple[str, ...]:
    try:
        return parse_controllers(text)
    except FlagError as err:
        raise argparse.ArgumentTypeError(str(err).removeprefix("--controllers: ")) from None


def doctor_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Check the CCM's setup, read-only: cloud config, Xen Orchestra, "
        "Kubernetes access, leader election and every node. Exit 0: all ok (warnings "
        "allowed); 1: something to fix; 2: something could not be checked.",
    )
    d = DoctorOptions()
    a = parser.add_argument
    a(
        "--cloud-config",
        metavar="FILE",
        default=None,
        help="the CCM's cloud config (else the XOA_* variables)",
    )
    a(
        "--kubeconfig",
        metavar="FILE",
        default=None,
        help="kubeconfig path (default: in-cluster config)",
    )
    a("--output", "-o", choices=("table", "json"), default=d.output, help="default table")
    a(
        "--leader-elect",
        metavar="BOOL",
        type=parse_bool,
        nargs="?",
        const=True,
        default=d.leader_elect,
        help="as the CCM runs (default true); false skips the Lease check",
    )
    a(
        "--leader-elect-resource-name",
        metavar="NAME",
        default=d.lease_name,
        help="the CCM's Lease name (default %(default)s)",
    )
    a(
        "--leader-elect-resource-namespace",
        metavar="NAMESPACE",
        default=d.lease_namespace,
        help="the CCM's Lease namespace (default %(default)s)",
    )
    a(
        "--controllers",
        metavar="LIST",
        type=_controllers,
        default=d.controllers,
        help="the CCM's --controllers (default *): with cloud-node-csr-approval, the "
        "approver's permissions and pending kubelet serving CSRs are checked",
    )
    a(
        "--uninitialized-grace",
        metavar="DURATION",
        type=parse_duration,
        default=d.uninitialized_grace,
        help="a node still uninitialized after this long is stuck (default 2m)",
    )
    a(
        "--timeout",
        metavar="DURATION",
        type=parse_duration,
        default=d.timeout,
        help="how long to wait for XO and the API server, retries included (default 10s)",
    )
    a(
        "--all-nodes",
        action="store_true",
        help="list every node's ok lines too (default: one count per check)",
    )
    a(
        "--reset-deletion-breaker",
        action="store_true",
        help="instead of checking: re-arm the deletion breaker and empty its window (the "
        "Lease <leader-elect-resource-name>-deletion-breaker), once the deletions it "
        "held back are understood",
    )
    a(
        "--v",
        "-v",
        metavar="N",
        type=int,
        default=d.v,
        help="log verbosity to stderr (default 0: none)",
    )
    return parser


def options_from_args(args: argparse.Namespace) -> DoctorOptions:
    return DoctorOptions(
        cloud_config=args.cloud_config,
        kubeconfig=args.kubeconfig,
        output=args.output,
        leader_elect=args.leader_elect,
        lease_name=args.leader_elect_resource_name,
        lease_namespace=args.leader_elect_resource_namespace,
        uninitialized_grace=args.uninitialized_grace,
        timeout=max(0.1, args.timeout),
        all_nodes=args.all_nodes,
        reset_deletion_breaker=args.reset_deletion_breaker,
        v=args.v,
        controllers=args.controllers,
    )
