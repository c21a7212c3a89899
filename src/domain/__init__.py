"""The CCM's domain: values, pure policies, ports and the three services.

Nothing here does I/O or imports a framework: the services talk to the world
only through the ports in :mod:`domain.ports`, so they can run on in-memory
fakes, a real cluster, or whatever a larger platform plugs in.
"""
