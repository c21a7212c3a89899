"""Adapters: the ports implemented over real systems (Kubernetes, Xen Orchestra),
plus configuration, metrics and the health endpoints, and over memory
(:mod:`adapters.memory`, which the composition side may swap in: only
:mod:`entrypoints` imports it). The stand-ins for the world around the process
(the fake XO server, a local control plane) are not adapters: they live in
:mod:`entrypoints.testkits`."""
