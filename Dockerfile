# syntax=docker/dockerfile:1
# One recipe, two builders: `docker build .`, or scripts/build-image without any
# container engine, which runs these same instructions (the apt-get line of each
# stage by mmdebstrap, RUN in a chroot, pip from a wheelhouse of the same lock).
# The builder understands this file's shapes only and stops on anything else.
#
# Two stages: the locked dependencies and the project are installed into a venv by
# Debian's own Python 3.11, and only that venv is copied onto the same slim base.
FROM debian:bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python3 -m venv /opt/ccm
COPY requirements.lock ./
RUN /opt/ccm/bin/pip install --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/ccm/bin/pip install --no-deps .

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends python3 && rm -rf /var/lib/apt/lists/*
LABEL org.opencontainers.image.title="xenorchestra-cloud-controller-manager" \
      org.opencontainers.image.description="Kubernetes cloud controller manager for Xen Orchestra (Python)" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/ccm /opt/ccm
# No .pyc writes: the root filesystem is read-only in the manifests.
ENV PATH=/opt/ccm/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 10258:10258
EXPOSE 10258
ENTRYPOINT ["xenorchestra-cloud-controller-manager"]
