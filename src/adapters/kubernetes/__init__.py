"""The ports on a real Kubernetes API server, over the official ``kubernetes`` client.

- :mod:`client`: ``connect()``/``KubeClient``: the official package's configuration
  and credentials, requests sent from the loop (:mod:`transport`), rate limited
  (``--kube-api-qps``/``--kube-api-burst``), retrying 429/5xx with backoff; JSON
  dicts in and out (:mod:`wire`); its watches (:mod:`watch`); where its
  configuration comes from (:mod:`configuration`).
- :mod:`nodes`: ``KubernetesNodeStore``: list+watch cache of lean domain Nodes,
  resourceVersion-guarded merge patches.
- :mod:`events`: ``KubernetesEventRecorder`` (core/v1 Events about Nodes) and
  ``record_client_check_failure`` (the events.k8s.io/v1 startup warning).
- :mod:`leader`: ``LeaseLeaderElector`` (coordination.k8s.io/v1 Lease).
- :mod:`breaker`: ``KubernetesBreakerStore`` (the deletion breaker's Lease annotations).
"""

from adapters.kubernetes.breaker import KubernetesBreakerStore, breaker_lease_name
from adapters.kubernetes.client import ClientSettings, KubeClient, connect
from adapters.kubernetes.configuration import load_configuration
from adapters.kubernetes.errors import ApiError, ApiUnavailableError, KubeConfigError
from adapters.kubernetes.events import KubernetesEventRecorder, record_client_check_failure
from adapters.kubernetes.leader import LeaseLeaderElector, default_identity
from adapters.kubernetes.nodes import KubernetesNodeStore
from adapters.kubernetes.ratelimit import Backoff, TokenBucket
from adapters.kubernetes.reflector import Reflector, unconverted
from adapters.kubernetes.watch import WatchStream

__all__ = [
    "ApiError",
    "ApiUnavailableError",
    "Backoff",
    "ClientSettings",
    "KubeClient",
    "KubeConfigError",
    "KubernetesBreakerStore",
    "KubernetesEventRecorder",
    "KubernetesNodeStore",
    "LeaseLeaderElector",
    "Reflector",
    "TokenBucket",
    "WatchStream",
    "breaker_lease_name",
    "connect",
    "default_identity",
    "load_configuration",
    "record_client_check_failure",
    "unconverted",
]
