"""Adapters: the ports implemented over real systems (Kubernetes, Xen Orchestra)
and in memory, plus configuration, metrics and the health endpoints."""
