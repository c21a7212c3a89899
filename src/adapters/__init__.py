"""Adapters: the ports implemented over real systems (Kubernetes, Xen Orchestra),
plus configuration, metrics and the health endpoints. Test kits (in-memory
ports, the fake XO server, a local control plane) live apart, in
:mod:`adapters.testing`, which no real adapter imports."""
