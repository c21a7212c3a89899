"""Delegated authentication and authorization of the secure port, as
``k8s.io/apiserver``'s delegating options do it for every Kubernetes component.

Each request is first **authenticated**, then **authorized**:

- authentication: a client certificate verified against the client CA (user = its
  CN, groups = its O values); a certificate the client CA did not sign is not a
  user, and without a bearer token that authenticates it is ``401``, as Go's union
  of the x509 and token authenticators answers; else a bearer token, authenticated
  by a TokenReview
  (answers cached ``--authentication-token-webhook-cache-ttl``, keyed by a salted
  hash of the token, errors not cached); a token the API server rejects, or a
  review that fails, is ``401``; no credentials at all is the anonymous user
  ``system:anonymous`` (group ``system:unauthenticated``). Authenticated users also
  get the group ``system:authenticated``.
- authorization: the group ``system:masters`` is always allowed; the paths of
  ``--authorization-always-allow-paths`` (exact, or a prefix ending in ``*``) are
  allowed for anyone; anything else asks a SubjectAccessReview for the non-resource
  path and the lowercase HTTP method as verb (``get``), cached
  ``--authorization-webhook-cache-authorized-ttl`` / ``-unauthorized-ttl``; not allowed
  is ``403``, a failed review ``500``.

Without a client for the reviews (no ``--authentication-kubeconfig`` and not in a
cluster), tokens are not looked at (every request is anonymous) and only the
always-allowed paths answer, as Go's optional delegation behaves.

The reviews go through ``adapters.kubernetes``' client (its own connection pool,
request budget and retries).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from loguru import logger

from adapters.kubernetes.client import KubeClient
from adapters.kubernetes.errors import ApiError
from adapters.observability.client_certificates import Verdict, peer_certificate

ANONYMOUS = "system:anonymous"
UNAUTHENTICATED = "system:unauthenticated"
AUTHENTICATED = "system:authenticated"
MASTERS = "system:masters"
TOKEN_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
ACCESS_REVIEWS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
AUTH_CONFIGMAP = "/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication"


@dataclass(frozen=True)
class User:
    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def key(self) -> str:
        return json.dumps(
            [self.name, self.uid, sorted(self.groups), sorted(self.extra.items())],
            sort_keys=True,
        )


ANONYMOUS_USER = User(ANONYMOUS, groups=(UNAUTHENTICATED,))


class Unauthorized(Exception):
    """The request carried credentials that do not authenticate."""


class _TTLCache:
    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, Any]] = {}

    def get(self, key: str) -> Any | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= time.monotonic():
            del self._entries[key]
            return None
        return entry[1]

    def put(self, key: str, value: Any, ttl: float) -> None:
        if ttl <= 0:
            return
        if len(self._entries) > 4096:  # drop expired entries, then the oldest
            now = time.monotonic()
            self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
            while len(self._entries) > 4096:
                del self._entries[next(iter(self._entries))]
        self._entries[key] = (time.monotonic() + ttl, value)


class PathMatcher:
    """``--authorization-always-allow-paths``: exact paths, or prefixes ending in ``*``;
    a leading ``/`` is optional."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self._exact: set[str] = set()
        self._prefixes: list[str] = []
        for pattern in patterns:
            p = pattern.removeprefix("/")
            if p.endswith("*"):
                self._prefixes.append(p[:-1])
            else:
                self._exact.add(p)

    def __call__(self, path: str) -> bool:
        p = path.removeprefix("/")
        return p in self._exact or any(p.startswith(prefix) for prefix in self._prefixes)


def status_body(code: int, reason: str, message: str) -> bytes:
    """A ``metav1.Status`` failure, as the API server and every component answer."""
    return json.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "details": {},
            "code": code,
        }
    ).encode()


def _status(code: int, reason: str, message: str) -> web.Response:
    return web.Response(
        status=code,
        body=status_body(code, reason, message),
        content_type="application/json",
        headers={"Cache-Control": "no-cache, private"},
    )


def user_from_certificate(peer: Mapping[str, Any]) -> User:
    """x509's CommonNameUserConversion: CN is the user, each O a group.

    ``peer`` is ``ssl``'s decoded form of a certificate the handshake verified
    against the client CA (``getpeercert()``; ``subject`` is a tuple of RDNs, each a
    tuple of (attribute, value) pairs): no certificate parser in this process."""
    attributes = [pair for rdn in peer.get("subject") or () for pair in rdn]
    cn = [str(value) for name, value in attributes if name == "commonName"]
    orgs = [str(value) for name, value in attributes if name == "organizationName"]
    if not cn or not cn[0]:
        raise Unauthorized("client certificate without a common name")
    return User(cn[0], groups=tuple(orgs))


class DelegatedAuth:
    """Authenticates and authorizes requests of the secure port (see the module doc)."""

    def __init__(
        self,
        *,
        authentication: KubeClient | None,
        authorization: KubeClient | None,
        always_allow_paths: Sequence[str] = ("/healthz", "/readyz", "/livez"),
        token_ttl: float = 10.0,
        allowed_ttl: float = 10.0,
        denied_ttl: float = 10.0,
        client_certificates: bool = False,
    ) -> None:
        self._authn = authentication
        self._authz = authorization
        self._always_allow = PathMatcher(always_allow_paths)
        self._token_ttl = token_ttl
        self._allowed_ttl = allowed_ttl
        self._denied_ttl = denied_ttl
        self._client_certificates = client_certificates
        self._salt = os.urandom(16)
        self._tokens = _TTLCache()
        self._decisions = _TTLCache()
        #: Reviews sent (tests and the doctor read them).
        self.token_reviews = 0
        self.access_reviews = 0

    # -- authentication ---------------------------------------------------
    async def authenticate(self, request: web.Request) -> User:
        untrusted = False
        if self._client_certificates:
            ssl_object = (
                request.transport.get_extra_info("ssl_object") if request.transport else None
            )
            peer = peer_certificate(ssl_object)
            if peer.verdict is Verdict.VERIFIED and peer.decoded is not None:
                return _with_authenticated(user_from_certificate(peer.decoded))
            untrusted = peer.verdict is Verdict.UNVERIFIED
        token = _bearer_token(request.headers.get("Authorization", ""))
        if token is not None and self._authn is not None:
            return _with_authenticated(await self._review_token(token))
        if untrusted:
            raise Unauthorized("client certificate not signed by the client CA")
        return ANONYMOUS_USER

    async def _review_token(self, token: str) -> User:
        key = hashlib.sha256(self._salt + token.encode()).hexdigest()
        cached = self._tokens.get(key)
        if cached is not None:
            if isinstance(cached, User):
                return cached
            raise Unauthorized("invalid bearer token")
        assert self._authn is not None
        self.token_reviews += 1
        try:
            answer = await _review(self._authn, TOKEN_REVIEWS, "TokenReview", {"token": token})
        except ApiError as err:
            logger.warning("TokenReview failed: {}", err)
            raise Unauthorized("token review failed") from None
        status = answer.get("status") or {}
        if not status.get("authenticated"):
            self._tokens.put(key, False, self._token_ttl)
            raise Unauthorized("invalid bearer token")
        info = status.get("user") or {}
        user = User(
            str(info.get("username", "")),
            uid=str(info.get("uid", "")),
            groups=tuple(str(g) for g in info.get("groups") or ()),
            extra={
                str(k): tuple(str(x) for x in v or ()) for k, v in (info.get("extra") or {}).items()
            },
        )
        self._tokens.put(key, user, self._token_ttl)
        return user

    # -- authorization ----------------------------------------------------
    async def authorize(self, user: User, path: str, verb: str) -> tuple[bool, str]:
        """(allowed, reason); raises ApiError when the review itself fails."""
        if MASTERS in user.groups or self._always_allow(path):
            return True, ""
        if self._authz is None:
            return False, "no authorization-kubeconfig: only the always-allowed paths answer"
        key = json.dumps([user.key(), path, verb])
        cached = self._decisions.get(key)
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        self.access_reviews += 1
        spec: dict[str, Any] = {
            "user": user.name,
            "groups": list(user.groups),
            "nonResourceAttributes": {"path": path, "verb": verb},
        }
        if user.uid:
            spec["uid"] = user.uid
        if user.extra:
            spec["extra"] = {k: list(v) for k, v in user.extra.items()}
        answer = await _review(self._authz, ACCESS_REVIEWS, "SubjectAccessReview", spec)
        status = answer.get("status") or {}
        decision = (bool(status.get("allowed")), str(status.get("reason") or ""))
        self._decisions.put(key, decision, self._allowed_ttl if decision[0] else self._denied_ttl)
        return decision

    # -- the aiohttp middleware ---------------------------------------------
    def middleware(self) -> Callable[..., Awaitable[web.StreamResponse]]:
        @web.middleware
        async def guard(
            request: web.Request,
            handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
        ) -> web.StreamResponse:
            try:
                user = await self.authenticate(request)
            except Unauthorized:
                return _status(401, "Unauthorized", "Unauthorized")
            verb = request.method.lower()
            try:
                allowed, reason = await self.authorize(user, request.path, verb)
            except ApiError as err:
                logger.warning("SubjectAccessReview failed: {}", err)
                return _status(
                    500,
                    "InternalError",
                    f'Internal Server Error: "{request.path}": authorization failed',
                )
            if not allowed:
                message = f'forbidden: User "{user.name}" cannot {verb} path "{request.path}"'
                if reason:
                    message += f": {reason}"
                return _status(403, "Forbidden", message)
            return await handler(request)

        return guard


async def _review(
    client: KubeClient, path: str, kind: str, spec: Mapping[str, Any]
) -> dict[str, Any]:
    """Create a review (TokenReview, SubjectAccessReview): its answer."""
    group = path.split("/")[2]  # /apis/<group>/v1/...
    body = {"apiVersion": f"{group}/v1", "kind": kind, "spec": dict(spec)}
    return await client.request("POST", path, body=body)


def _with_authenticated(user: User) -> User:
    if AUTHENTICATED in user.groups:
        return user
    return User(user.name, user.uid, (*user.groups, AUTHENTICATED), user.extra)


def _bearer_token(header: str) -> str | None:
    """The token of ``Authorization: Bearer <token>`` (scheme case-insensitive)."""
    parts = header.strip().split(" ", 2)
    if len(parts) < 2 or parts[0].lower() != "bearer" or not parts[1]:
        return None
    return parts[1]


async def client_ca_from_cluster(client: KubeClient) -> bytes | None:
    """The ``client-ca-file`` of ``kube-system/extension-apiserver-authentication``
    (what Go reads without ``--client-ca-file``), or None when it has none.
    Raises ApiError when the ConfigMap cannot be read."""
    answer = await client.request("GET", AUTH_CONFIGMAP)
    data = answer.get("data") or {}
    bundle = data.get("client-ca-file")
    return bundle.encode() if bundle else None
