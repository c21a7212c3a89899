"""``doctor``: the troubleshooting guide as one read-only command.

``xenorchestra-cloud-controller-manager doctor --cloud-config FILE
[--kubeconfig FILE] [--output table|json]`` reads, and never writes: the
cloud config (as the CCM loads it), Xen Orchestra, Kubernetes (version,
identity, access reviews, the Lease, one paged node list) and every node
against one XO snapshot: a constant number of requests whatever the
cluster's size. Its clients come from the CCM's own container, with
doctor's budgets (:func:`~entrypoints.doctor.command.doctor_container`).

One module per check family, each holding its verdicts (pure functions,
table-tested without a server), the reading that feeds them, and its fix
texts:

- :mod:`.findings`: a finding, its status, the check names, the exit code;
- :mod:`.config`, :mod:`.xo`, :mod:`.kube`, :mod:`.rbac`: the checks by family;
- :mod:`.topology`: the zone and region sources, and the hosts or pools a tag
  source finds untagged;
- :mod:`.nodes`, :mod:`.node_vm`: every node, by the CCM's own rules
  (``domain.matching``, ``domain.policies``): "what the CCM would do" is
  computed by the very code the CCM runs;
- :mod:`.texts`: the fix hints several checks share (kubectl commands,
  the RBAC manifest);
- :mod:`.report`, :mod:`.options`, :mod:`.command`: output, flags, the run.

Exit codes: 0 all ok (warnings allowed), 1 something to fix, 2 something
could not be checked (:func:`~entrypoints.doctor.findings.exit_code`).
"""

from entrypoints.doctor.command import main_doctor

__all__ = ["main_doctor"]
