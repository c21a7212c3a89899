# syntax=docker/dockerfile:1
# Two stages: dependencies and the project are installed into a venv from the
# lock (exact versions), and only that venv is copied onto a slim runtime.
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/ccm
COPY requirements.lock ./
RUN /opt/ccm/bin/pip install --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/ccm/bin/pip install --no-deps .

FROM python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="xenorchestra-cloud-controller-manager" \
      org.opencontainers.image.description="Kubernetes cloud controller manager for Xen Orchestra (Python)" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/ccm /opt/ccm
# No .pyc writes: the root filesystem is read-only in the manifests.
ENV PATH=/opt/ccm/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 10258:10258
EXPOSE 10258
ENTRYPOINT ["xenorchestra-cloud-controller-manager"]
