"""The ports on a real Kubernetes API server.

- :mod:`client`: ``connect()``/``KubeClient``: kept connections per client for
  requests (:mod:`transport`, :mod:`direct`) and watches (:mod:`watch`), rate limited
  (``--kube-api-qps``/``--kube-api-burst``), retrying 429/5xx with backoff; JSON
  dicts in and out (:mod:`wire`); the kubeconfig and its credentials
  (:mod:`configuration`, the one module that uses the official ``kubernetes`` package).
- :mod:`nodes`: ``KubernetesNodeStore``: list+watch cache of lean domain Nodes,
  resourceVersion-guarded merge patches.
- :mod:`events`: ``KubernetesEventRecorder`` (core/v1 Events about Nodes) and
  ``record_client_check_failure`` (the events.k8s.io/v1 startup warning).
- :mod:`leader`: ``LeaseLeaderElector`` (coordination.k8s.io/v1 Lease), moving the
  :mod:`fence` the controllers' client asks before each write.
- :mod:`breaker`: ``KubernetesBreakerStore`` (the deletion breaker's Lease annotations).
"""

from adapters.kubernetes.breaker import KubernetesBreakerStore, breaker_lease_name
from adapters.kubernetes.client import ClientSettings, KubeClient, connect
from adapters.kubernetes.configuration import ApiConfig
from adapters.kubernetes.errors import ApiError, ApiUnavailableError, KubeConfigError
from adapters.kubernetes.events import KubernetesEventRecorder, record_client_check_failure
from adapters.kubernetes.fence import LeadershipFence, NotLeadingError
from adapters.kubernetes.leader import LeaseLeaderElector, default_identity
from adapters.kubernetes.nodes import KubernetesNodeStore
from adapters.kubernetes.ratelimit import Backoff, TokenBucket
from adapters.kubernetes.reflector import Reflector, unconverted
from adapters.kubernetes.watch import WatchStream

__all__ = [
    "ApiConfig",
    "ApiError",
    "ApiUnavailableError",
    "Backoff",
    "ClientSettings",
    "KubeClient",
    "KubeConfigError",
    "KubernetesBreakerStore",
    "KubernetesEventRecorder",
    "KubernetesNodeStore",
    "LeadershipFence",
    "LeaseLeaderElector",
    "NotLeadingError",
    "Reflector",
    "TokenBucket",
    "WatchStream",
    "breaker_lease_name",
    "connect",
    "default_identity",
    "record_client_check_failure",
    "unconverted",
]
