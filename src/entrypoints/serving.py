"""The secure port from the flags: HTTPS with delegated authentication and
authorization, as ``k8s.io/cloud-provider`` sets it up.

- ``--secure-port=0``: nothing is served;
- the review clients (:func:`review_client`, opened and closed by the container):
  ``--authentication-kubeconfig`` / ``--authorization-kubeconfig``, else the
  in-cluster service account; outside a cluster without them, no reviews
  (tokens are ignored, only the always-allowed paths answer), as Go's
  ``RemoteKubeConfigFileOptional`` does. They never fall back to ``--kubeconfig``;
- the client CA: ``--client-ca-file``, else (unless ``--authentication-skip-lookup``)
  the ``client-ca-file`` of ``kube-system/extension-apiserver-authentication``; a
  failed lookup stops the start unless ``--authentication-tolerate-lookup-failure``.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loguru import logger

from adapters.kubernetes import ApiError, KubeConfigError, connect
from adapters.kubernetes.client import ClientSettings, KubeClient
from adapters.observability.delegated_auth import DelegatedAuth, client_ca_from_cluster
from adapters.observability.health import HealthServer, ReadinessCheck
from adapters.observability.secure_serving import (
    ServingError,
    ServingOptions,
    SNICertificate,
    build_ssl_context,
)
from entrypoints.flags.settings import TLS_CIPHERS, Settings

#: client-go's QPS/burst for the delegation clients ("this will effectively limit
#: API server responsiveness"), and their 10 s review timeout.
REVIEW_CLIENT = ClientSettings(
    qps=200, burst=400, workers=4, read_timeout=10.0, max_retries=4, backoff_base=0.5
)


class SecureServingError(Exception):
    """The secure port cannot be set up; the message is one line."""


@dataclass
class SecurePort:
    """The server (None with ``--secure-port=0``) and its authentication and
    authorization; the review clients it uses are not its own (the container's)."""

    server: HealthServer | None
    auth: DelegatedAuth | None = None

    @property
    def url(self) -> str:
        return self.server.url if self.server is not None else "(not served)"

    @property
    def listening(self) -> str:
        """What the port is bound to, as Go prints it (``[::]:10258 (...)``)."""
        if self.server is None or not self.server.listening:
            return "(not served)"
        return f"https://{self.server.listening}"

    async def start(self) -> None:
        if self.server is not None:
            await self.server.start()

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()


def in_cluster() -> bool:
    """client-go's ErrNotInCluster test: the service host and port are set."""
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and bool(
        os.environ.get("KUBERNETES_SERVICE_PORT")
    )


async def review_client(kubeconfig: str | None, *, purpose: str) -> KubeClient | None:
    """A client for the reviews of ``purpose`` ("authentication"/"authorization"),
    or None when there is none to use; the caller closes it."""
    name = f"delegated-{purpose}"
    if kubeconfig:
        try:
            return await connect(kubeconfig, settings=REVIEW_CLIENT, name=name)
        except KubeConfigError as err:
            raise SecureServingError(
                f"failed to get delegated {purpose} kubeconfig: {err}"
            ) from None
    if not in_cluster():
        return None
    try:
        return await connect(None, settings=REVIEW_CLIENT, name=name)
    except KubeConfigError as err:
        logger.warning("failed to read in-cluster kubeconfig for delegated {}: {}", purpose, err)
        return None


async def _client_ca(settings: Settings, client: KubeClient | None) -> bytes | None:
    if settings.client_ca_file:
        try:
            path = Path(settings.client_ca_file)
            return await asyncio.to_thread(path.read_bytes)
        except OSError as err:
            raise SecureServingError(f"--client-ca-file: cannot read: {err}") from None
    if settings.authentication_skip_lookup:
        return None
    if client is None:
        logger.warning(
            "No authentication-kubeconfig provided in order to lookup client-ca-file in "
            "configmap/extension-apiserver-authentication in kube-system, so client "
            "certificate authentication won't work."
        )
        return None
    try:
        return await client_ca_from_cluster(client)
    except ApiError as err:
        if settings.authentication_tolerate_lookup_failure:
            logger.warning(
                "Error looking up in-cluster authentication configuration: {}. Continuing "
                "without it (set --authentication-tolerate-lookup-failure=false to require it)",
                err,
            )
            return None
        raise SecureServingError(
            "unable to load configmap based client CA file (extension-apiserver-authentication "
            f"in kube-system): {err}"
        ) from None


async def secure_port(
    settings: Settings,
    *,
    metrics: Any,
    readiness: ReadinessCheck | None,
    authentication: KubeClient | None = None,
    authorization: KubeClient | None = None,
) -> SecurePort:
    """The secure port the flags describe (not started yet), reviewing tokens
    with ``authentication`` and requests with ``authorization`` (:func:`review_client`)."""
    if settings.secure_port == 0:
        logger.info("--secure-port=0: health and metrics are not served")
        return SecurePort(None)
    authn, authz = authentication, authorization
    if authz is None:
        logger.warning(
            "No authorization-kubeconfig provided, so SubjectAccessReview of "
            "authorization tokens won't work."
        )
    try:
        client_ca = await _client_ca(settings, authn)
        options = ServingOptions(
            bind_address=settings.bind_address,
            cert_file=settings.tls_cert_file,
            key_file=settings.tls_private_key_file,
            cert_dir=settings.cert_dir,
            sni=tuple(SNICertificate(c, k, n) for c, k, n in settings.tls_sni_cert_key),
            min_version=settings.tls_min_version,
            ciphers=tuple(
                dict.fromkeys(
                    TLS_CIPHERS[s] for s in settings.tls_cipher_suites if s in TLS_CIPHERS
                )
            ),
            client_ca_pem=client_ca,
        )
        # File reads and an RSA key generation: off the loop.
        context, origin = await asyncio.to_thread(build_ssl_context, options)
    except ServingError as err:
        raise SecureServingError(str(err)) from None
    port = SecurePort(None)
    port.auth = DelegatedAuth(
        authentication=authn,
        authorization=authz,
        always_allow_paths=settings.authorization_always_allow_paths,
        token_ttl=settings.authentication_token_webhook_cache_ttl,
        allowed_ttl=settings.authorization_webhook_cache_authorized_ttl,
        denied_ttl=settings.authorization_webhook_cache_unauthorized_ttl,
        client_certificates=client_ca is not None,
    )
    port.server = HealthServer(
        metrics=metrics,
        readiness=readiness,
        bind_address=settings.bind_address,
        port=settings.secure_port,
        ssl_context=context,
        middlewares=[port.auth.middleware()],
        reuse_port=settings.permit_port_sharing,
    )
    logger.info("secure port {} serves HTTPS with {}", settings.secure_port, origin)
    return port
