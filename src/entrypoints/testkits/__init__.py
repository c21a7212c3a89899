"""Test kits: stand-ins for the world the real adapters talk to.

- :mod:`entrypoints.testkits.fake_xo`: a fake Xen Orchestra REST API server with a
  control API and the ``fake-xo`` sub-command (the XO adapter's tests, the
  end-to-end suites, the benchmarks, the demo's fake-HTTP mode);
- :mod:`entrypoints.testkits.local_cluster`: etcd + kube-apiserver on loopback.

Neither implements a port, so neither is an adapter: they are the outside world,
started by whoever runs the process. Inside :mod:`entrypoints`, the layers
contract keeps the domain, the application and the adapters from importing them;
a forbidden contract keeps everything the controller process loads away from them
but the ``demo`` and ``fake-xo`` sub-commands; ``.dockerignore`` leaves them out
of the image. The in-memory ports, which embedders use too, are an adapter
family of their own (:mod:`adapters.memory`).
"""
