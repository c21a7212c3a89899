"""Test kits: stand-ins for the world the real adapters talk to.

- :mod:`adapters.testing.memory`: an in-memory implementation of every port
  (the unit tests, the demo and embedders use them);
- :mod:`adapters.testing.fake_xo`: a fake Xen Orchestra REST API server with a
  control API (the XO adapter's tests, the end-to-end suites, the demo, ``fake-xo``);
- :mod:`adapters.testing.local_cluster`: etcd + kube-apiserver on loopback.

They ship with the package (the demo and the ``fake-xo`` sub-command use
them), but an import-linter contract keeps the domain, the application and
every real adapter from importing them: production code never depends on a
fake, and a fake can grow test-only conveniences without leaking into it.
"""
