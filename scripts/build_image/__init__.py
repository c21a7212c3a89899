"""The container image built without a container engine, from the Dockerfile itself.

``scripts/build-image`` runs the project's ``Dockerfile`` on this machine: its
``FROM debian:<suite>-slim`` with the stage's ``apt-get install`` line becomes a
Debian minbase of that suite made by ``mmdebstrap`` (dpkg's excludes of the slim
images), its ``RUN`` lines run in a chroot of it, ``COPY`` takes the build context
that ``.dockerignore`` lets through, pip installs offline from a wheelhouse that the
host's pip fills from ``requirements.lock``, and the last stage's layers and settings
are written as an OCI image archive (``ctr images import``, ``docker load``,
``podman load``). One recipe, two builders: what the Dockerfile says is what both
build, and an instruction this builder does not understand stops it.

Standard library only: it runs with any Python 3.11+, before any venv exists.
"""
